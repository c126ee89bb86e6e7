from celery import shared_task

from console import realtime
from console.services.engine_link import beat_engine


@shared_task(ignore_result=False)
def broadcast_heartbeat() -> dict:
    """Scheduled by beat; proves beat -> worker -> channel layer -> websocket end to end."""
    return realtime.broadcast_heartbeat(source="celery")


@shared_task(ignore_result=True)
def heartbeat_engine() -> None:
    """Scheduled by beat: the console's heartbeat that keeps the engine's dead-man trigger from firing."""
    beat_engine()
