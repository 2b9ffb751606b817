"""Control transfer (issue 12): adapters in plans, LoRA save/load, key checks, the kohya converter, the slider."""
import copy
import os

import pytest
import torch

from divdistill import distilled, hybrid, run_plan
from divdistill.control import (AdapterMismatchError, KohyaKeyError, add_lora, kohya_to_peft, load_adapter,
                                load_controls, peft_to_kohya, save_adapter)
from divdistill.control.kohya import delta_weights
from divdistill.plan import Step, with_adapters

PROMPTS, SEEDS = ["a red circle", "a blue square"], [3, 4]


def _lora(unet, name="x", seed=0):
    """A non-zero LoRA (random A and B) on `unet`."""
    torch.manual_seed(seed)
    add_lora(unet, name, rank=2)
    with torch.no_grad():
        for n, p in unet.named_parameters():
            if "lora_B" in n:
                p.normal_(0, 0.05)
    unet.requires_grad_(False)


def _images(world, plan):
    return run_plan(world, plan, PROMPTS, SEEDS, capture=False).images


def test_save_load_round_trip_gives_identical_outputs(random_world, tmp_path):
    clean = copy.deepcopy(random_world.specs["student"].unet)
    _lora(random_world.specs["student"].unet)
    plan = with_adapters(distilled(random_world, "student"), {"x": 1.0})
    want = _images(random_world, plan)
    save_adapter(random_world.specs["student"].unet, "x", str(tmp_path))
    random_world.specs["student"].unet = clean
    load_controls(random_world, str(tmp_path), "x", models=["student"])
    torch.testing.assert_close(_images(random_world, plan), want, rtol=0, atol=0)
    assert not torch.equal(want, _images(random_world, distilled(random_world, "student")))  # the LoRA does act


def test_scale_zero_equals_no_lora_and_all_ones_schedule_equals_constant(random_world):
    plan = hybrid(random_world, "student", k=1)
    before = _images(random_world, plan)
    for name in ("base", "student"):
        _lora(random_world.specs[name].unet, seed=len(name))
    torch.testing.assert_close(_images(random_world, with_adapters(plan, {"x": 0.0})), before, rtol=0, atol=0)
    torch.testing.assert_close(_images(random_world, plan), before, rtol=0, atol=0)  # no adapters named: off
    one = _images(random_world, with_adapters(plan, {"x": 1.0}))
    torch.testing.assert_close(_images(random_world, with_adapters(plan, {"x": [1.0] * len(plan)})), one,
                               rtol=0, atol=0)
    late = _images(random_world, with_adapters(plan, {"x": [0.0, 0.0, 1.0, 1.0]}))
    torch.testing.assert_close(_images(random_world, with_adapters(plan, {"x": 1.0}, start=2)), late, rtol=0, atol=0)
    assert not torch.equal(late, one) and not torch.equal(late, before)


def test_several_adapters_each_with_its_own_scale(random_world):
    unet = random_world.specs["student"].unet
    _lora(unet, "a", 1), _lora(unet, "b", 2)
    plan = distilled(random_world, "student")
    both = _images(random_world, with_adapters(plan, {"a": 1.0, "b": 0.5}))
    only_a = _images(random_world, with_adapters(plan, {"a": 1.0, "b": 0.0}))
    assert not torch.equal(both, only_a)
    torch.testing.assert_close(only_a, _images(random_world, with_adapters(plan, {"a": 1.0})), rtol=0, atol=0)


def test_bad_adapter_inputs_fail_clearly(random_world):
    plan = distilled(random_world, "student")
    with pytest.raises(ValueError, match="per-step scales"):
        with_adapters(plan, {"x": [1.0, 1.0]})
    with pytest.raises(ValueError, match="start=9"):
        with_adapters(plan, {"x": 1.0}, start=9)
    with pytest.raises(ValueError, match="pairs"):
        Step("base", 999, 0.0, None, ("x", 1.0))
    with pytest.raises(ValueError, match=r"no adapter\(s\) \['nope'\]"):
        _images(random_world, with_adapters(plan, {"nope": 1.0}))


@pytest.fixture(scope="module")
def committed():
    from divdistill import load_world
    from divdistill.control.registry import lora_dir

    world = load_world("tiny", device="cpu", students=["dmd2", "lcm", "turbo", "lightning"])
    path = lora_dir(world, "base", "slider")
    if not os.path.exists(os.path.join(path, "provenance.json")):
        pytest.skip(f"no committed control LoRAs at {path} (python -m divdistill.control train-all)")
    return world


def test_base_lora_loads_into_every_student_and_mismatch_names_keys(committed, random_world):
    from divdistill.control.registry import lora_dir

    path = lora_dir(committed, "base", "slider")
    assert load_controls(committed, path, "s") == committed.names  # no key mismatch anywhere
    assert all("s" in committed.spec(m).unet.peft_config for m in committed.names)
    with pytest.raises(AdapterMismatchError, match=r"shape mismatch.*down_blocks"):  # same layout, other widths
        load_adapter(random_world.specs["base"].unet, path, "s")
    from diffusers import UNet2DConditionModel

    other = UNet2DConditionModel.from_config({**committed.spec("base").unet.config, "layers_per_block": 2})
    with pytest.raises(AdapterMismatchError, match=r"missing module\(s\) \['down_blocks\.\d\.resnets\.1"):
        load_adapter(other, path, "s")


def test_slider_attribute_is_monotone_over_scales(committed):
    from divdistill.control.registry import adapter_name, lora_dir
    from divdistill.chapters.control.measure import readout
    from divdistill.tiny.evaluator import load_evaluator

    name = adapter_name("base", "slider")
    load_controls(committed, lora_dir(committed, "base", "slider"), name, models=["dmd2"])
    ev = load_evaluator(committed.extras["evaluator_root"])
    sizes = [readout(committed, ev, "slider", distilled(committed, "dmd2"), 2, {name: s}).mean()
             for s in (-2.0, -1.0, 0.0, 1.0, 2.0)]
    assert all(b > a for a, b in zip(sizes, sizes[1:])), sizes


def test_kohya_converter_round_trips_a_known_state_dict():
    from diffusers import UNet2DConditionModel
    from sdxl_fixture import UNET

    torch.manual_seed(0)
    unet = UNet2DConditionModel(**UNET).eval()
    mods = [n for n, m in unet.named_modules() if n.endswith(("attn2.to_k", "attn2.to_v", "attn1.to_q"))]
    rank, alpha, kohya = 4, 2.0, {}
    for n in mods:
        w = dict(unet.named_modules())[n].weight
        base = "lora_unet_" + n.replace(".", "_")
        kohya[base + ".lora_down.weight"] = torch.randn(rank, w.shape[1]) * 0.1
        kohya[base + ".lora_up.weight"] = torch.randn(w.shape[0], rank) * 0.1
        kohya[base + ".alpha"] = torch.tensor(alpha)
    peft = kohya_to_peft(kohya, unet)
    for n in mods:  # the effective delta is (alpha / rank) · up @ down, and it survives peft → kohya → peft
        base = "lora_unet_" + n.replace(".", "_")
        want = alpha / rank * kohya[base + ".lora_up.weight"] @ kohya[base + ".lora_down.weight"]
        torch.testing.assert_close(delta_weights(peft)[n], want)
    back = kohya_to_peft(peft_to_kohya(peft), unet)
    for n, d in delta_weights(back).items():
        torch.testing.assert_close(d, delta_weights(peft)[n])
    merged = copy.deepcopy(unet)  # loading the converted adapter equals merging the kohya delta into the weights
    with torch.no_grad():
        for n, d in delta_weights(peft).items():
            dict(merged.named_modules())[n].weight += d
    load_adapter(unet, peft, "slider", strict=False)
    unet.enable_adapters(), unet.set_adapters(["slider"], [1.0])
    x, t = torch.randn(1, 4, 16, 16), torch.tensor([500])
    kw = dict(encoder_hidden_states=torch.randn(1, 5, 64),
              added_cond_kwargs={"text_embeds": torch.randn(1, 32), "time_ids": torch.randn(1, 6)})
    with torch.no_grad():
        torch.testing.assert_close(unet(x, t, **kw).sample, merged(x, t, **kw).sample, atol=1e-5, rtol=1e-4)
    bad = {k.replace("attn1_to_q", "attn1_to_query"): v for k, v in kohya.items()}
    with pytest.raises(KohyaKeyError, match=r"to_query.*expected module.*nearest module is '.*\.to_q'"):
        kohya_to_peft(bad, unet)
    k0 = next(k for k in kohya if k.endswith("lora_down.weight"))
    with pytest.raises(KohyaKeyError, match=r"do not fit module"):
        kohya_to_peft({**kohya, k0: torch.randn(rank, 7)}, unet)
    with pytest.raises(KohyaKeyError, match="lora_te1_"):
        kohya_to_peft({"lora_te1_text_model_x.lora_down.weight": torch.zeros(1)}, unet)


def test_summary_of_the_committed_run_is_finite(committed, tmp_path):
    """The chapter's C1 entries from the committed Table-1 analogue (the notebook itself runs at smoke size in
    tests/test_notebooks.py, which executes every notebook)."""
    import math

    from divdistill.book import claims
    from divdistill.chapters.control.report import load_committed, summary_entries

    path = claims.write_summary("control_transfer", summary_entries(load_committed(committed)["rows"], "tiny"),
                                str(tmp_path))
    summary = claims.load_summary(path)
    assert {e["id"] for e in summary} == {"C1"} and {e["scale"] for e in summary} == {"tiny"} and len(summary) == 2
    assert all(e["n"] > 0 and e["holds"] in (True, False, None) for e in summary)
    for r in load_committed(committed)["rows"]:
        assert all(math.isfinite(r[k][f]) for k in ("delta", "ratio") for f in ("mean", "lo", "hi")), r
