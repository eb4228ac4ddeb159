"""The pipeline simulator against timelines worked out by hand (`legato.cascade.simulate`)."""

import pytest

from legato.cascade.simulate import StageModel, linear, simulate


def const(seconds):
    return lambda n: seconds


def test_one_stage_runs_its_batches_one_after_another():
    out = simulate([StageModel("base", const(2.0))], 5)
    assert out.makespan == 10.0
    assert out.latencies == (2.0, 4.0, 6.0, 8.0, 10.0)
    assert out.busy == (1.0,)


def test_balanced_stages_overlap_but_for_filling_and_draining():
    # two stages of 1 s each: item k leaves the second stage at k + 1; efficiency N / (N + 1)
    out = simulate([StageModel("base", const(1.0)), StageModel("sr", const(1.0))], 8)
    assert out.makespan == 9.0
    assert out.throughput == pytest.approx(8 / 9)
    assert out.latencies == tuple(float(k + 2) for k in range(8))


def test_replicas_of_the_dear_stage_take_the_bottleneck_away():
    # a 1 s base and a 4 s SR stage: one SR actor sets 1 item / 4 s; four take every fourth item each and keep
    # up with the base, so the last item leaves at N + 4
    slow = simulate([StageModel("base", const(1.0)), StageModel("sr", const(4.0))], 12)
    assert slow.makespan == 1.0 + 12 * 4.0
    wide = simulate([StageModel("base", const(1.0)), StageModel("sr", const(4.0), replicas=4)], 12)
    assert wide.makespan == 12 + 4.0
    assert wide.busy[1] == pytest.approx(48 / (4 * 16))  # the SR actors idle only while the pipeline fills


def test_an_actor_runs_its_calls_in_submission_order_and_batches_regroup_between_stages():
    # base: batches of 2 (0.5 + 0.25 per item); sr: batches of 3 (1 s each) wait for every item they cover
    stages = [StageModel("base", linear(0.5, 0.25), batch_size=2), StageModel("sr", const(1.0), batch_size=3)]
    out = simulate(stages, 6)
    # base batches done at 1, 2, 3; sr batch {0,1,2} needs base batches 1 and 2 (done 2): 2 -> 3; {3,4,5}: 3 -> 4
    assert out.latencies == (3.0, 3.0, 3.0, 4.0, 4.0, 4.0)


def test_transfers_delay_each_hand_over():
    out = simulate([StageModel("base", const(1.0), transfer=0.25), StageModel("sr", const(1.0))], 1)
    assert out.makespan == 2.25


def test_bad_models_are_refused():
    with pytest.raises(ValueError, match="replicas=0"):
        StageModel("sr", const(1.0), replicas=0)
    with pytest.raises(ValueError, match="at least one item"):
        simulate([StageModel("base", const(1.0))], 0)


def test_balance_gives_the_dear_stage_replicas_and_the_cheap_ones_fractions():
    from legato.cascade.simulate import Share, balance, throughput

    costs = [1.0, 1.0, 4.0]  # seconds per item on one device: an SR stage 4x its base
    cpus = balance(costs, 2)
    assert cpus == [
        Share(1, pytest.approx(1 / 3)),
        Share(1, pytest.approx(1 / 3)),
        Share(2, pytest.approx(2 / 3)),
    ]
    assert throughput(costs, cpus) == pytest.approx(2 / 6)  # all of the devices' work: the ideal
    gpus = balance(costs, 8, whole=True)  # whole GPUs where a stage's share is one or more
    assert sum(g.replicas * g.devices for g in gpus) <= 8
    assert gpus[2].replicas >= 5
    assert gpus[2].devices == 1.0
    assert throughput(costs, gpus) == pytest.approx(1.0)  # 0.75 of the ideal 8 / 6: GPUs come whole
    even = [Share(1, 1.0)] * 3  # one GPU per stage (the other five idle)
    assert throughput(costs, gpus) == 4 * throughput(costs, even)
