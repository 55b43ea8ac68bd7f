"""Parameter sweeps through a real server: grid, parallel workers, streamed and ranked results."""

from __future__ import annotations

import grpc
import pytest

from tapedeck.backtest.v1 import backtest_pb2 as pb
from tests.backtest.runs_support import running_service, spec
from tests.support import field_violations


def ints(*values: int) -> list[pb.ParameterValue]:
    return [pb.ParameterValue(int_value=v) for v in values]


async def test_sweep_of_four_points_streams_four_results_then_the_ranked_sweep(
    database_url, data_dir
):
    async with running_service(database_url, data_dir, workers=2) as service:
        dataset = await service.import_trades()
        created = await service.stub.CreateSweep(
            pb.CreateSweepRequest(
                base_spec=spec(dataset),
                axes=[
                    pb.ParameterAxis(name="fast_period", values=ints(3, 6)),
                    pb.ParameterAxis(name="slow_period", values=ints(12, 30)),
                ],
                metric=pb.RANK_METRIC_TOTAL_RETURN,
            )
        )
        sweep = created.sweep
        assert sweep.state == pb.SWEEP_STATE_RUNNING
        assert sweep.total_runs == 4

        results, final = [], None
        async for message in service.stub.WatchSweep(
            pb.WatchSweepRequest(name=sweep.name), timeout=120
        ):
            if message.WhichOneof("event") == "result":
                results.append(message.result)
            else:
                final = message.sweep
        assert len(results) == 4
        assert {r.backtest for r in results} == {r.backtest for r in final.results}
        assert all(r.state == pb.BACKTEST_STATE_SUCCEEDED for r in results)
        assert final.state == pb.SWEEP_STATE_SUCCEEDED
        assert final.finished_runs == 4
        assert [r.rank for r in final.results] == [1, 2, 3, 4]
        returns = [r.stats.total_return for r in final.results]
        assert returns == sorted(returns, reverse=True)
        points = {
            (r.parameters["fast_period"].int_value, r.parameters["slow_period"].int_value)
            for r in final.results
        }
        assert points == {(3, 12), (3, 30), (6, 12), (6, 30)}

        members = await service.stub.ListBacktests(pb.ListBacktestsRequest(sweep=sweep.name))
        assert {b.name for b in members.backtests} == {r.backtest for r in final.results}
        assert all(b.sweep == sweep.name for b in members.backtests)
        got = await service.stub.GetSweep(pb.GetSweepRequest(name=sweep.name))
        assert got.sweep == final
        listed = await service.stub.ListSweeps(pb.ListSweepsRequest())
        assert [s.name for s in listed.sweeps] == [sweep.name]
        assert listed.sweeps[0].finished_runs == 4
        assert listed.sweeps[0].state == pb.SWEEP_STATE_SUCCEEDED
        assert list(listed.sweeps[0].results) == []

        # A point equal to a finished run is not run again: the new sweep reuses it.
        again = await service.stub.CreateSweep(
            pb.CreateSweepRequest(
                base_spec=spec(dataset),
                axes=[
                    pb.ParameterAxis(name="fast_period", values=ints(3)),
                    pb.ParameterAxis(name="slow_period", values=ints(12)),
                ],
            )
        )
        assert again.sweep.finished_runs == 1
        assert again.sweep.results[0].backtest in {r.backtest for r in final.results}


async def test_sweep_requests_are_validated_naming_the_field(database_url, data_dir):
    async with running_service(database_url, data_dir, workers=0) as service:
        dataset = await service.import_trades()
        cases = [
            ([], "axes"),
            ([pb.ParameterAxis(name="fast_period", values=ints(5, 1))], "axes[0].values[1]"),
            ([pb.ParameterAxis(name="nope", values=ints(1))], "axes[0].name"),
            ([pb.ParameterAxis(name="fast_period", values=[])], "axes[0].values"),
            (
                [
                    pb.ParameterAxis(name="fast_period", values=ints(3)),
                    pb.ParameterAxis(name="fast_period", values=ints(4)),
                ],
                "axes[1].name",
            ),
            (
                [
                    pb.ParameterAxis(name="fast_period", values=ints(*range(2, 102))),
                    pb.ParameterAxis(name="slow_period", values=ints(*range(200, 301))),
                ],
                "axes",
            ),
        ]
        for axes, field in cases:
            with pytest.raises(grpc.aio.AioRpcError) as raised:
                await service.stub.CreateSweep(
                    pb.CreateSweepRequest(base_spec=spec(dataset), axes=axes)
                )
            assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT, field
            assert field in field_violations(raised.value), (field, raised.value.details())
        listed = await service.stub.ListSweeps(pb.ListSweepsRequest())
        assert list(listed.sweeps) == []
        runs = await service.stub.ListBacktests(pb.ListBacktestsRequest())
        assert list(runs.backtests) == []


async def test_a_worker_reusing_its_loaded_engine_gives_the_same_results_as_a_fresh_one(
    tmp_path, data_dir
):
    axes = [
        pb.ParameterAxis(name="fast_period", values=ints(4, 7)),
        pb.ParameterAxis(name="slow_period", values=ints(20)),
    ]
    # One worker runs both points: the second on the engine reset after the first.
    async with running_service(f"sqlite+aiosqlite:///{tmp_path / 'a.db'}", data_dir) as service:
        dataset = await service.import_trades()
        created = await service.stub.CreateSweep(
            pb.CreateSweepRequest(base_spec=spec(dataset), axes=axes)
        )
        final = None
        async for message in service.stub.WatchSweep(
            pb.WatchSweepRequest(name=created.sweep.name), timeout=120
        ):
            final = message.sweep if message.WhichOneof("event") == "sweep" else final
    assert final is not None
    by_point = {r.parameters["fast_period"].int_value: r for r in final.results}
    # The same point alone, in a fresh worker of a fresh service.
    fresh_dir = tmp_path / "fresh"
    fresh_dir.mkdir()
    async with running_service(f"sqlite+aiosqlite:///{tmp_path / 'b.db'}", fresh_dir) as fresh:
        dataset = await fresh.import_trades()
        alone = spec(dataset)
        for fast in (7, 4):
            alone.parameters["fast_period"].int_value = fast
            alone.parameters["slow_period"].int_value = 20
            created_run = await fresh.stub.CreateBacktest(pb.CreateBacktestRequest(spec=alone))
            run = await fresh.wait(created_run.backtest.name)
            reused = by_point[fast].stats
            for field in ("pnl", "fees", "ending_equity", "fill_count", "trade_count"):
                assert getattr(run.stats, field) == getattr(reused, field), (fast, field)
