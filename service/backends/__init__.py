from service.backends.background import BackgroundBackend
from service.backends.base import AfterResponse, AsyncBackend

__all__ = ["AfterResponse", "AsyncBackend", "BackgroundBackend"]
