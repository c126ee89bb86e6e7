"""The Django project (settings, ASGI, URLs, Celery app) and the web console app."""

from console.celery import app as celery_app

__all__ = ("celery_app",)
