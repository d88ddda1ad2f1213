from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from redis.asyncio import Redis

from service.jobs.backends.base import AsyncBackend
from service.jobs.notifier import Notifier
from service.jobs.store import JobStore
from service.models.base import Model
from service.settings import Settings


@dataclass(frozen=True, slots=True)
class Services:
    """What a request handler needs, built once per worker process in the lifespan."""

    settings: Settings
    redis: Redis
    store: JobStore
    model: Model
    backend: AsyncBackend
    notifier: Notifier


def get_services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


ServicesDep = Annotated[Services, Depends(get_services)]
