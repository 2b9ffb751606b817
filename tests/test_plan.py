"""Plans: helpers, split schedules, and their errors."""
import pytest

from divdistill import Plan, Step, base, distilled, hybrid, mixed, skip_first, switch_at
from conftest import STUDENT_TS


def test_hybrid_split_parts_add_up_to_full_schedule(random_world):
    full = distilled(random_world, "student").timesteps
    for k in range(len(full) + 1):
        plan = hybrid(random_world, "student", k=k)
        parts = [s.timestep for _, seg in plan.segments() for s in seg]
        assert parts == full == list(STUDENT_TS)
        assert plan.models == ["base"] * k + ["student"] * (len(full) - k)
        starts = [start for start, _ in plan.segments()]
        assert starts == sorted(starts) and starts[0] == 0


def test_switch_at_and_mixed_cover_the_schedule(random_world):
    ts = [999, 874, 749, 624, 499, 374, 249, 124]
    sw = switch_at(random_world, 500, "base", "student", ts)
    assert sw.timesteps == ts and sw.models == ["base"] * 4 + ["student"] * 4
    for beta, want in ((0.0, {"student"}), (1.0, {"base"})):
        assert set(mixed(random_world, beta, 0, "base", "student", ts).models) == want
    m = mixed(random_world, 0.5, 3, "base", "student", ts)
    assert m.timesteps == ts and m == mixed(random_world, 0.5, 3, "base", "student", ts)


def test_mixed_frequency_matches_beta(random_world):
    ts = list(range(999, 0, -10))
    frac = sum(s.model == "base" for seed in range(20) for s in mixed(random_world, 0.3, seed, "base", "student", ts))
    assert abs(frac / (20 * len(ts)) - 0.3) < 0.03


def test_skip_first_drops_leading_steps(random_world):
    assert skip_first(random_world, "student", 1).timesteps == list(STUDENT_TS[1:])


def test_base_plan_uses_its_own_grid(random_world):
    plan = base(random_world)
    assert len(plan) == 8 and plan.timesteps[0] == 999 and set(plan.models) == {"base"}
    assert all(s.guidance == 3.0 for s in plan)


@pytest.mark.parametrize("call, message", [
    (lambda w: hybrid(w, "student", k=5), "k=5"),
    (lambda w: hybrid(w, "student", k=-1), "valid k is 0..4"),
    (lambda w: hybrid(w, "nope"), "valid names"),
    (lambda w: mixed(w, 1.5, 0, "base", "student", [999, 499]), "[0, 1]"),
    (lambda w: mixed(w, -0.1, 0, "base", "student", [999, 499]), "[0, 1]"),
    (lambda w: distilled(w, "student", guidance=-1.0), "guidance must be >= 0"),
    (lambda w: switch_at(w, 100, "base", "student", [999, 499]), "split the schedule"),
    (lambda w: hybrid(w, "student", base_scheduler="other"), "'student' or 'base'"),
])
def test_bad_plans_raise_clear_errors(random_world, call, message):
    with pytest.raises((ValueError, KeyError), match=message.replace("[", r"\[").replace("]", r"\]").replace(".", r"\.")):
        call(random_world)


def test_plan_rejects_non_decreasing_timesteps():
    with pytest.raises(ValueError, match="strictly decrease"):
        Plan((Step("base", 499, 0), Step("base", 999, 0)))
    with pytest.raises(ValueError, match="at least one step"):
        Plan(())
