"""LiveService: proto <-> domain; validation in messages, SQL in repository."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import grpc
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tapedeck.live.v1 import live_pb2, live_pb2_grpc
from tapedeck_common.errors import FieldViolation, InvalidArgument, NotFound
from tapedeck_common.paging import PageTokens
from tapedeck_common.shielded import ShieldedWork
from tapedeck_common.validation import nanos_to_timestamp
from tapedeck_live import messages, repository, session_messages, session_repository, tail
from tapedeck_live.domain import EventFilter, EventType
from tapedeck_live.gate import Gate
from tapedeck_live.notifier import Notifier
from tapedeck_live.sessions import SummarizedEvent, closed_trade
from tapedeck_live.tail import Fanout

Context = grpc.aio.ServicerContext[Any, Any]

DEFAULT_PAGE_SIZE = 100
MAX_PAGE_SIZE = 1000
MAX_SESSIONS_PAGE_SIZE = 500


class LiveServicer(live_pb2_grpc.LiveServiceServicer):
    """The live service's RPCs."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        *,
        reads: async_sessionmaker[AsyncSession],
        notifier: Notifier,
        fanout: Fanout,
        gate: Gate,
        page_tokens: PageTokens,
        subscribe_batch_size: int,
        heartbeat_seconds: float,
        subscriber_reads: int,
        encoded_events: int,
    ) -> None:
        self._sessions = sessions
        self._reads = reads
        self._notifier = notifier
        self._fanout = fanout
        self._gate = gate
        self._page_tokens = page_tokens
        self._batch_size = subscribe_batch_size
        self._heartbeat_seconds = heartbeat_seconds
        self._readers = asyncio.Semaphore(subscriber_reads)
        self._shielded = ShieldedWork()
        self._encoded = messages.EncodedEvents(max_events=encoded_events)

    async def close(self) -> None:
        """Let reads of subscribers that went away finish, so their connections go back."""
        await self._shielded.wait_idle()

    async def AppendEvents(
        self, request: live_pb2.AppendEventsRequest, context: Context
    ) -> live_pb2.AppendEventsResponse:
        """Append a batch in one transaction; duplicates are counted, not stored."""
        events = messages.new_events(request.events)
        async with self._sessions.begin() as session:
            result = await repository.append_events(session=session, events=events)
        if result.appended:
            self._notifier.wake()
        return live_pb2.AppendEventsResponse(
            appended_count=result.appended,
            duplicate_count=result.duplicates,
            sequences=result.sequences,
        )

    async def ListEvents(
        self, request: live_pb2.ListEventsRequest, context: Context
    ) -> live_pb2.ListEventsResponse:
        """Return a page of matching events, newest first."""
        event_filter = messages.event_filter(request.filter)
        async with self._reads() as session:
            events, token = await self._page(session, "ListEvents", event_filter, request)
        response = live_pb2.ListEventsResponse.FromString(events)
        response.next_page_token = token
        return response

    async def ListBlocks(
        self, request: live_pb2.ListBlocksRequest, context: Context
    ) -> live_pb2.ListBlocksResponse:
        """Return a page of trade_blocked events and the counts per reason for the filter."""
        parsed = messages.event_filter(request.filter)
        event_filter = EventFilter(
            types=(EventType.TRADE_BLOCKED,),
            run_id=parsed.run_id,
            reason=parsed.reason,
            symbol=parsed.symbol,
            start_ns=parsed.start_ns,
            end_ns=parsed.end_ns,
        )
        # Autocommit: page and counts are two statements, no BEGIN/ROLLBACK round trips; counts
        # may include a block appended between them, which the next refresh shows anyway.
        async with self._reads() as session:
            events, token = await self._page(session, "ListBlocks", event_filter, request)
            counts = await repository.count_block_reasons(
                session=session, event_filter=event_filter
            )
        response = live_pb2.ListBlocksResponse.FromString(events)
        response.next_page_token = token
        response.reason_counts.extend(
            live_pb2.ReasonCount(reason=c.reason, count=c.count) for c in counts
        )
        return response

    async def _page(
        self,
        session: AsyncSession,
        method: str,
        event_filter: EventFilter,
        request: live_pb2.ListEventsRequest | live_pb2.ListBlocksRequest,
    ) -> tuple[bytes, str]:
        """Return the page's events in wire form (see EncodedEvents) and the next page token."""
        page = self._page_tokens.page(
            request,
            query=f"{method}:{event_filter.fingerprint()}",
            keys=(int,),
            default_size=DEFAULT_PAGE_SIZE,
            max_size=MAX_PAGE_SIZE,
        )
        # Newest first: a page resumes below the sequence of the last event it sent.
        before = None if page.after is None else int(page.after[0])
        stored = await repository.list_events(
            session=session, event_filter=event_filter, before=before, limit=page.fetch
        )
        kept, token = page.cut(stored, lambda event: (event.sequence,))
        chunk = next(self._encoded.chunks(kept), None)
        if chunk is None:
            return b"", token
        if chunk.last_sequence != kept[-1].sequence:
            # Cut short to stay under the message size limit: resume after the last one sent.
            token = page.token_after((chunk.last_sequence,))
        return chunk.events, token

    async def SubscribeEvents(
        self, request: live_pb2.SubscribeEventsRequest, context: Context
    ) -> AsyncIterator[live_pb2.SubscribeEventsResponse]:
        """Stream the backlog after the cursor, then the live tail, with heartbeats when idle."""
        event_filter = messages.event_filter(request.filter)
        if request.after_sequence < 0:
            raise InvalidArgument([FieldViolation("after_sequence", "must not be negative")])
        after = None if request.tail_only else request.after_sequence
        async for batch in tail.follow(
            sessions=self._reads,
            fanout=self._fanout,
            readers=self._readers,
            reads=self._shielded,
            event_filter=event_filter,
            after=after,
            batch_size=self._batch_size,
            heartbeat_seconds=self._heartbeat_seconds,
        ):
            if not batch.events:
                yield live_pb2.SubscribeEventsResponse(cursor=batch.cursor)
                continue
            chunks = list(self._encoded.chunks(batch.events))
            for index, chunk in enumerate(chunks):
                # Only the last message of a batch may carry the batch's cursor (it can be beyond
                # the last matching event); earlier ones resume right after their own last event.
                last = index == len(chunks) - 1
                response = live_pb2.SubscribeEventsResponse.FromString(chunk.events)
                response.cursor = batch.cursor if last else chunk.last_sequence
                yield response

    async def CheckOrder(
        self, request: live_pb2.CheckOrderRequest, context: Context
    ) -> live_pb2.CheckOrderResponse:
        """Gate an order: allowed, or blocked with its reason and the recorded event."""
        order = messages.order(request)
        verdict = await self._gate.check(order, time_remaining=context.time_remaining())
        return messages.check_order_response(verdict.decision, verdict.event)

    async def ListSessions(
        self, request: live_pb2.ListSessionsRequest, context: Context
    ) -> live_pb2.ListSessionsResponse:
        """Return a page of trading sessions, most recently started first."""
        trader_id = session_messages.trader_filter(request)
        page = self._page_tokens.page(
            request,
            query=f"ListSessions:{trader_id or ''}",
            keys=(int,),
            max_size=MAX_SESSIONS_PAGE_SIZE,
        )
        before = None if page.after is None else int(page.after[0])
        async with self._reads() as session:
            # The cursor first: every session listed includes at least the events up to it.
            through = await session_repository.summarized_through(session=session)
            rows = await session_repository.list_sessions(
                session=session, trader_id=trader_id, before=before, limit=page.fetch
            )
            listed, token = page.cut(rows, lambda summary: (summary.first_sequence,))
            positions = await session_repository.open_positions(
                session=session, run_ids=[summary.run_id for summary in listed]
            )
        return live_pb2.ListSessionsResponse(
            sessions=[
                session_messages.session_message(
                    summary, [p for p in positions if p.run_id == summary.run_id]
                )
                for summary in listed
            ],
            next_page_token=token,
            summarized_sequence=through,
        )

    async def ListSessionTrades(
        self, request: live_pb2.ListSessionTradesRequest, context: Context
    ) -> live_pb2.ListSessionTradesResponse:
        """Return a page of a session's round trips, the latest closed first, with their fees."""
        closed_filter = session_messages.trades_filter(request)
        page = self._page_tokens.page(
            request,
            query=f"ListSessionTrades:{closed_filter.fingerprint()}",
            keys=(int,),
            default_size=DEFAULT_PAGE_SIZE,
            max_size=MAX_PAGE_SIZE,
        )
        before = None if page.after is None else int(page.after[0])
        run_id = request.run_id
        async with self._reads() as session:
            bounds = await session_repository.session_bounds(session=session, run_id=run_id)
            if bounds is None:
                raise NotFound(f"no session has run_id {run_id[:64]!r}")
            stored = await repository.list_events(
                session=session, event_filter=closed_filter, before=before, limit=page.fetch
            )
            kept, token = page.cut(stored, lambda event: (event.sequence,))
            closed = [
                trade
                for trade in (
                    closed_trade(SummarizedEvent(e.sequence, e.type, e.run_id, e.ts_ns, e.payload))
                    for e in kept
                )
                if trade is not None
            ]
            trades = await session_repository.with_their_fees(
                session=session, run_id=run_id, closed=closed
            )
        return live_pb2.ListSessionTradesResponse(
            trades=[session_messages.trade_message(trade) for trade in trades],
            next_page_token=token,
            session_start_time=nanos_to_timestamp(bounds[0]),
            session_last_time=nanos_to_timestamp(bounds[1]),
        )
