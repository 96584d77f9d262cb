"""The worker's consumer: Celery's, retrying a lost broker every few seconds rather than up to every 30."""
from __future__ import annotations

import functools

from celery.worker.consumer import Consumer

# kombu's defaults (first retry after 2 s, each 2 s longer, at most 30 s) left a worker idle for
# up to 30 s after RabbitMQ came back; a retry every 3 s costs the broker nothing.
RECONNECT_START_S = 0.5
RECONNECT_STEP_S = 1.0
RECONNECT_MAX_S = 3.0


class QuickReconnectConsumer(Consumer):
    """Celery's consumer with a shorter retry schedule for broker connections (startup and after a loss)."""

    def ensure_connected(self, conn):
        """Celery's ensure_connected, its kombu Connection told our retry intervals."""
        conn.ensure_connection = functools.partial(
            conn.ensure_connection, interval_start=RECONNECT_START_S,
            interval_step=RECONNECT_STEP_S, interval_max=RECONNECT_MAX_S)
        return super().ensure_connected(conn)
