"""Readers for recorded market data files (replay and backtest threads)."""
