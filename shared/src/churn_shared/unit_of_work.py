"""The request's unit of work, written once for every service.

A write is answered only after it is committed: the session dependency runs with
``scope="function"``, so FastAPI exits it (commit or rollback) when the endpoint returns and
*before* the response is sent. A commit that fails therefore becomes the request's error (a
5xx problem, or a retried request: :class:`churn_shared.middleware.ErrorBoundaryMiddleware`)
instead of a 2xx for data that was never stored. Once committed, the outbox relay is woken so the
request's events leave at once, and the steps registered with :func:`after_commit` run (still
before the response; a step that fails is logged, since the request's writes are stored).

An error raised with ``keeps_changes = True`` (for instance a detected refresh-token reuse whose
revocation must stick) commits the transaction before it propagates; every other error rolls
it back.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Annotated

from fastapi import Depends, Request
from sqlmodel.ext.asyncio.session import AsyncSession

from churn_shared.db import commit
from churn_shared.errors import ProblemError
from churn_shared.logging import get_logger
from churn_shared.runtime import ProcessState

_log = get_logger(__name__)
_AFTER_COMMIT = "churn_after_commit"


def after_commit(session: AsyncSession, step: Callable[[], Awaitable[object]]) -> None:
    """Run ``step`` once the request's transaction is committed, before the response (the
    request boundary's ``on_committed``, as :class:`churn_shared.kafka.TransactionalHandler`
    has for a message). A request that fails does not run it."""
    session.info.setdefault(_AFTER_COMMIT, []).append(step)


async def request_session(request: Request) -> AsyncIterator[AsyncSession]:
    """One transaction per request, committed before the response (see the module doc)."""
    state: ProcessState = request.app.state
    async with state.session_factory() as session:
        try:
            yield session
        except ProblemError as exc:
            if exc.keeps_changes:
                await commit(session)
            else:
                await session.rollback()
            raise
        except BaseException:
            await session.rollback()
            raise
        await commit(session)
        steps = session.info.pop(_AFTER_COMMIT, [])
    if state.outbox_relay is not None:
        state.outbox_relay.notify()
    for step in steps:
        try:
            await step()
        except Exception:
            # Committed: the request succeeded, and is not answered as a failure a client
            # would retry (a retried rollback of a model would roll back twice).
            _log.exception("after_commit_step_failed", path=request.url.path)


#: The request's session. ``scope="function"`` is what puts the commit before the response.
SessionDep = Annotated[AsyncSession, Depends(request_session, scope="function")]
