"""Client use cases (the worker's client book)."""

from __future__ import annotations

from backend.domain.clients import Client
from backend.service.ports import TenantUnitOfWork


def list_clients(*, page: int, page_size: int, uow: TenantUnitOfWork) -> tuple[list[Client], int]:
    """Lists one page of the workspace's clients, by name, with the total count."""
    with uow:
        return uow.clients.list_page(offset=(page - 1) * page_size, limit=page_size)
