"""Walk-forward through a real server on SQLite and PostgreSQL: in-sample sweeps per fold on real
engine runs, each winner run out of sample, efficiency and the stitched equity, checked against
the runs' own statistics and equity as the service serves them."""

from __future__ import annotations

import asyncio

import grpc
import pytest
from google.protobuf.duration_pb2 import Duration
from sqlalchemy.ext.asyncio import create_async_engine

from tapedeck.backtest.v1 import backtest_pb2 as pb
from tapedeck_backtest.runs import repository
from tapedeck_common.database import session_factory
from tests.backtest.runs_support import ints, running_service, spec
from tests.support import counted_statements, field_violations

YEAR_NS = 365 * 86_400 * 10**9


def ns(timestamp) -> int:
    return timestamp.seconds * 10**9 + timestamp.nanos


async def equity(stub, backtest: str) -> tuple[list[int], list[float]]:
    times, values = [], []
    async for message in stub.StreamEquity(pb.StreamEquityRequest(backtest=backtest)):
        times.extend(message.chunk.times)
        values.extend(message.chunk.equity)
    return times, values


def request(dataset: str, **walk: object) -> pb.CreateWalkForwardRequest:
    return pb.CreateWalkForwardRequest(
        base_spec=spec(dataset),
        axes=[
            pb.ParameterAxis(name="fast_period", values=ints(3, 6)),
            pb.ParameterAxis(name="slow_period", values=ints(12, 30)),
        ],
        metric=pb.RANK_METRIC_TOTAL_RETURN,
        walk_forward=pb.WalkForwardSpec(**walk),  # type: ignore[arg-type]
    )


async def test_each_fold_runs_its_in_sample_winner_out_of_sample(database_url, data_dir):
    async with running_service(database_url, data_dir, workers=2) as service:
        dataset = await service.import_trades()
        created = await service.stub.CreateWalkForward(
            request(
                dataset,
                folds=2,
                in_sample_duration=Duration(seconds=3600),
                out_of_sample_duration=Duration(seconds=2400),
            )
        )
        name = created.walk_forward.name
        assert created.walk_forward.state == pb.WALK_FORWARD_STATE_RUNNING
        walk = created.walk_forward
        for _ in range(1200):
            walk = (
                await service.stub.GetWalkForward(pb.GetWalkForwardRequest(name=name))
            ).walk_forward
            if walk.state != pb.WALK_FORWARD_STATE_RUNNING:
                break
            await asyncio.sleep(0.2)
        assert walk.state == pb.WALK_FORWARD_STATE_SUCCEEDED, walk

        in_rates, out_rates = [], []
        for fold in walk.folds:
            in_start, in_end = ns(fold.in_sample.start_time), ns(fold.in_sample.end_time)
            out_start, out_end = ns(fold.out_of_sample.start_time), ns(fold.out_of_sample.end_time)
            assert in_end == out_start
            sweep = (await service.stub.GetSweep(pb.GetSweepRequest(name=fold.sweep))).sweep
            assert sweep.state == pb.SWEEP_STATE_SUCCEEDED
            winner = sweep.results[0]
            assert dict(fold.best_parameters) == dict(winner.parameters)
            assert fold.in_sample_value == pytest.approx(winner.stats.total_return)
            # Every in-sample run saw only its window: its last point is the bar closing at the
            # fold's out-of-sample start at the latest (that bar holds only earlier trades).
            for result in sweep.results:
                times, _ = await equity(service.stub, result.backtest)
                assert in_start <= times[0]
                assert times[-1] <= out_start
            run = (
                await service.stub.GetBacktest(
                    pb.GetBacktestRequest(name=fold.out_of_sample_backtest)
                )
            ).backtest
            assert run.state == pb.BACKTEST_STATE_SUCCEEDED
            for key, value in winner.parameters.items():
                assert run.spec.parameters[key] == value
            assert (ns(run.spec.time_range.start_time), ns(run.spec.time_range.end_time)) == (
                out_start,
                out_end,
            )
            times, _ = await equity(service.stub, run.name)
            assert out_start < times[0]
            assert times[-1] <= out_end
            assert fold.out_of_sample_value == pytest.approx(run.stats.total_return)
            in_rate = winner.stats.total_return * YEAR_NS / (in_end - in_start)
            out_rate = run.stats.total_return * YEAR_NS / (out_end - out_start)
            in_rates.append(in_rate)
            out_rates.append(out_rate)
            if in_rate > 0:
                assert fold.efficiency == pytest.approx(out_rate / in_rate)
            else:
                assert not fold.HasField("efficiency")
        mean_in = sum(in_rates) / len(in_rates)
        if mean_in > 0:
            assert walk.efficiency == pytest.approx(sum(out_rates) / len(out_rates) / mean_in)

        # The stitched curve: fold 1's out-of-sample equity continues from where fold 0's ended.
        stitched_times, stitched = [], []
        async for message in service.stub.StreamWalkForwardEquity(
            pb.StreamWalkForwardEquityRequest(name=name, chunk_size=100)
        ):
            stitched_times.extend(message.chunk.times)
            stitched.extend(message.chunk.equity)
        expected_times, expected, level = [], [], None
        for fold in walk.folds:
            times, values = await equity(service.stub, fold.out_of_sample_backtest)
            scale = 1.0 if level is None else level / values[0]
            expected_times.extend(times)
            expected.extend(v * scale for v in values)
            level = expected[-1]
        assert stitched_times == expected_times
        assert stitched == pytest.approx(expected)


async def test_bad_walk_forwards_name_their_field(database_url, data_dir):
    async with running_service(database_url, data_dir, workers=0) as service:
        dataset = await service.import_trades(rows=400)
        hour = Duration(seconds=3600)
        cases = [
            (
                request(dataset, folds=0, in_sample_duration=hour, out_of_sample_duration=hour),
                "walk_forward.folds",
            ),
            (
                request(dataset, folds=2, out_of_sample_duration=hour),
                "walk_forward.in_sample_duration",
            ),
            (
                request(
                    dataset,
                    folds=2,
                    in_sample_duration=hour,
                    out_of_sample_duration=Duration(seconds=-5),
                ),
                "walk_forward.out_of_sample_duration",
            ),
            (
                request(dataset, folds=3, in_sample_duration=hour, out_of_sample_duration=hour),
                "walk_forward",
            ),
            (pb.CreateWalkForwardRequest(base_spec=spec(dataset)), "walk_forward"),
        ]
        for bad, field in cases:
            with pytest.raises(grpc.aio.AioRpcError) as error:
                await service.stub.CreateWalkForward(bad)
            assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            assert field in field_violations(error.value), field_violations(error.value)
        with pytest.raises(grpc.aio.AioRpcError) as error:
            await service.stub.GetWalkForward(pb.GetWalkForwardRequest(name="walkForwards/none"))
        assert error.value.code() == grpc.StatusCode.NOT_FOUND


async def test_list_walk_forwards_pages_newest_first_without_repeats_or_gaps(
    database_url, data_dir
):
    async with running_service(database_url, data_dir, workers=0) as service:
        dataset = await service.import_trades()
        created = []
        for folds in (1, 2, 1, 2, 1):
            reply = await service.stub.CreateWalkForward(
                request(
                    dataset,
                    folds=folds,
                    in_sample_duration=Duration(seconds=3600),
                    out_of_sample_duration=Duration(seconds=2400),
                )
            )
            created.append(reply.walk_forward.name)

        listed, token, pages = [], "", 0
        while True:
            page = await service.stub.ListWalkForwards(
                pb.ListWalkForwardsRequest(page_size=2, page_token=token)
            )
            listed.extend(page.walk_forwards)
            pages += 1
            token = page.next_page_token
            if not token:
                break
        assert pages == 3
        assert [walk.name for walk in listed] == created[::-1]
        for walk in listed:
            # The list carries what GetWalkForward does: folds, state, dataset.
            got = await service.stub.GetWalkForward(pb.GetWalkForwardRequest(name=walk.name))
            assert walk == got.walk_forward
            assert walk.base_spec.dataset == dataset
            assert walk.state == pb.WALK_FORWARD_STATE_RUNNING
        assert [len(walk.folds) for walk in listed] == [1, 2, 1, 2, 1]

        # A page loads its folds, their sweeps, points and runs in five statements at any size
        # (counted on an engine of its own: the service's background polling shares its engine).
        engine = create_async_engine(database_url)
        counts = []
        try:
            for limit in (1, 5):
                async with session_factory(engine)() as session:
                    with counted_statements(engine) as statements:
                        walks = await repository.list_walk_forwards(
                            session=session, after=None, limit=limit
                        )
                assert len(walks) == limit
                counts.append(len(statements))
        finally:
            await engine.dispose()
        assert counts == [5, 5]

        for size in (-1, 1001):
            with pytest.raises(grpc.aio.AioRpcError) as error:
                await service.stub.ListWalkForwards(pb.ListWalkForwardsRequest(page_size=size))
            assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            assert "page_size" in field_violations(error.value), field_violations(error.value)
