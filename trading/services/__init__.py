"""Use cases of the trading app (writes). Reads are in trading.selectors."""
