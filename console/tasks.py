from celery import shared_task

from console import realtime


@shared_task(ignore_result=False)
def broadcast_heartbeat() -> dict:
    """Scheduled by beat; proves beat -> worker -> channel layer -> websocket end to end."""
    return realtime.broadcast_heartbeat(source="celery")
