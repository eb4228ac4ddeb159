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
    assert gpus[2].replicas >= 4
    assert gpus[2].devices == 1.0
    assert throughput(costs, gpus) == pytest.approx(1.0)  # 0.75 of the ideal 8 / 6: GPUs come whole
    even = [Share(1, 1.0)] * 3  # one GPU per stage (the other five idle)
    assert throughput(costs, gpus) == 4 * throughput(costs, even)
    # cheap stages whose shares add up past one GPU: a fraction cannot straddle two GPUs, so what is planned
    # fits (fractions on one GPU, whole GPUs for the rest) and still reaches 0.9 of the ideal
    costs = [0.05, 0.11, 1.0]
    gpus = balance(costs, 8, whole=True)
    assert sum(g.devices for g in gpus if g.devices < 1) <= 1 + 1e-9
    assert sum(g.replicas for g in gpus if g.devices == 1) + any(g.devices < 1 for g in gpus) <= 8
    assert throughput(costs, gpus) >= 0.9 * 8 / sum(costs)
    one = balance(costs, 1, whole=True)  # one GPU: every stage shares it, in proportion to its cost
    assert [g.devices for g in one] == pytest.approx([c / sum(costs) for c in costs])


def test_shared_cores_match_dedicated_actors_while_there_are_enough():
    stages = [StageModel("base", linear(0.5, 0.25), batch_size=2), StageModel("sr", const(1.0), batch_size=3)]
    assert simulate(stages, 6, cores=2).latencies == simulate(stages, 6).latencies
    stages = [StageModel("base", const(1.0), transfer=0.25), StageModel("sr", const(4.0), replicas=4)]
    assert simulate(stages, 12, cores=5).latencies == pytest.approx(simulate(stages, 12).latencies)


def test_actors_on_too_few_cores_share_them():
    # two actors of one stage, two items of 1 s each, on one core: both run at half speed, both done at 2
    out = simulate([StageModel("sr", const(1.0), replicas=2)], 2, cores=1)
    assert out.latencies == (2.0, 2.0)
    # base 1 s then sr 1 s per item on one core: every call still takes a core-second: N items take 2N s
    two = [StageModel("base", const(1.0)), StageModel("sr", const(1.0))]
    assert simulate(two, 4, cores=1).makespan == pytest.approx(8.0)
    # on 1.5 cores: base's first call runs alone (done at 1); then a base and an sr call run together at 0.75
    # speed, 4/3 s a pair (done at 7/3, 11/3, 5); sr's last call runs alone again (done at 6)
    out = simulate(two, 4, cores=1.5)
    assert out.latencies == pytest.approx((7 / 3, 11 / 3, 5.0, 6.0))
    # a call on two threads wants both cores: with another running it gets 2/3 of its speed
    wide = [StageModel("base", const(1.0)), StageModel("sr", const(2.0), threads=2)]
    assert simulate(wide, 1, cores=2).makespan == pytest.approx(3.0)
    with pytest.raises(ValueError, match="cores=0"):
        simulate(two, 1, cores=0)
