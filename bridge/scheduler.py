"""The beat scheduler's public name: ``celery beat -S bridge.scheduler:BridgeScheduler``.

Deployed beat command lines name this module; the implementation lives in
:mod:`bridge.beat.scheduler` with the rest of the beat face.
"""

from bridge.beat.scheduler import BridgeScheduler

__all__ = ["BridgeScheduler"]
