"""`robot-rl train bc`, `robot-rl eval` and `robot-rl pipeline` end to end on tiny settings."""

from __future__ import annotations

import json

import av
import pytest

from robot_rl.cli.main import main
from robot_rl.policies import load

TINY = [
    "policy.unet.down_dims=[16,32]",
    "policy.unet.time_dim=16",
    "policy.state_hidden=32",
    "policy.state_features=16",
    "policy.horizon=8",
    "policy.action_steps=4",
    "algo.batch_size=8",
    "algo.warmup_steps=2",
]


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    out = tmp_path_factory.mktemp("ds") / "push"
    assert main(["collect", "task=arm_push", "episodes=6", "num_envs=3", f"out={out}"]) == 0
    return out


@pytest.fixture(scope="module")
def trained(dataset, tmp_path_factory):
    out = tmp_path_factory.mktemp("run") / "bc"
    args = ["train", "bc", "task=arm_push", "policy=flow", f"dataset={dataset}", f"out={out}"]
    args += [*TINY, "algo.steps=6", "eval_every=3", "eval_episodes=2", "eval_envs=2"]
    assert main(args) == 0
    return out


def test_train_writes_checkpoints_logs_and_plot(trained):
    summary = json.loads((trained / "train_summary.json").read_text())
    assert summary["steps"] == 6
    assert [h["step"] for h in summary["eval_history"]] == [3, 6]
    policy = load(trained / "checkpoints" / "last", expect={"task": "arm_push", "horizon": 8})
    assert policy.name == "flow" and policy.config.state_dim == 40
    assert int(policy.ema_step) == 6
    assert (trained / "training.png").stat().st_size > 1000
    assert any((trained / "tb").iterdir())


def test_train_resumes_from_its_checkpoint(trained, dataset, tmp_path):
    args = ["train", "bc", "policy=flow", f"dataset={dataset}", f"out={tmp_path / 'more'}"]
    args += [*TINY, "algo.steps=8", "eval_every=0", "eval_episodes=1", "eval_envs=1"]
    assert main([*args, f"resume={trained / 'checkpoints' / 'last'}"]) == 0
    summary = json.loads((tmp_path / "more" / "train_summary.json").read_text())
    assert summary["steps"] == 8
    assert int(load(tmp_path / "more" / "checkpoints" / "last").ema_step) == 8


def test_eval_writes_report_plots_and_video(trained, tmp_path, capsys):
    out = tmp_path / "eval"
    ckpt = trained / "checkpoints" / "last"
    args = ["eval", f"checkpoint={ckpt}", "episodes=3", "num_envs=3", f"out={out}"]
    assert main([*args, "video_episodes=2", "task.episode_length=12"]) == 0
    report = json.loads((out / "report.json").read_text())
    task = report["tasks"]["arm_push"]
    assert task["summary"]["episodes"] == 3
    assert len(task["lengths"]) == 3 and max(task["lengths"]) <= 12
    assert 0 <= task["summary"]["success_ci95_low"] <= task["summary"]["success_ci95_high"] <= 1
    for name in report["plots"]:
        assert (out / name).read_bytes()[:4] == b"\x89PNG"
    with av.open(str(out / task["video"])) as video:
        stream = video.streams.video[0]
        assert (stream.width, stream.height) == (640, 240)  # two 320x240 episodes side by side
        assert sum(1 for _ in video.decode(stream)) == 12
    assert '"arm_push"' in capsys.readouterr().out


@pytest.mark.parametrize(
    "args, message",
    [
        (["train", "bc"], "dataset=DIR"),
        (["train", "ppo"], "usage: robot-rl train"),
        (["train", "residual"], "base=DIR"),
        (["train", "bc", "dataset=/nonexistent/ds"], "/nonexistent/ds"),
        (["train", "bc", "dataset=x", "policy=nope"], "nope"),
        (["train", "bc", "dataset=x", "policy.horizon_typo=3"], "horizon_typo"),
        (["eval"], "checkpoint=DIR"),
        (["eval", "checkpoint=/nonexistent/ckpt"], "/nonexistent/ckpt"),
        (["eval", "checkpoint=x", "tasks=[arm_push]", "task.episode_length=0"], "episode_length"),
        (["eval", "checkpoint=x", "denoise_steps=0"], "denoise_steps must be >= 1"),
        (["eval", "checkpoint=x", "noise_scale=-1"], "noise_scale must be a finite number >= 0"),
        (["eval", "checkpoint=x", "sweep=friction"], "sweep must be one of ['randomization']"),
        (["eval", "checkpoint=x", "sweep=randomization", "tasks=[arm_push,arm_reach]"], "one task"),
        (["train", "bc", "task=arm_reach", "dataset=x"], "no demonstrations in the dataset"),
        (["train", "bc", "dataset=x", "algo.betas=[0.9]"], "algo.betas"),
    ],
)
def test_bad_arguments_give_one_line_errors(args, message, capsys, dataset, trained):
    ckpt = trained / "checkpoints" / "last"
    args = [a.replace("dataset=x", f"dataset={dataset}") for a in args]
    args = [a.replace("checkpoint=x", f"checkpoint={ckpt}") for a in args]
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert message in err
    assert len(err.splitlines()) == 1, err


PPO_TINY = [
    "task=humanoid_balance",
    "num_envs=8",
    "algo.steps_per_env=8",
    "algo.env_steps=64",
    "algo.actor_hidden=[16]",
    "algo.critic_hidden=[16]",
    "eval_every=64",
    "eval_episodes=2",
    "eval_envs=2",
    "task.episode_length=20",
    "device=cpu",
]


def test_eval_runs_a_ppo_checkpoint_plain_and_under_a_randomization_sweep(tmp_path, capsys):
    run = tmp_path / "ppo"
    assert main(["train", "ppo", *PPO_TINY, f"out={run}"]) == 0
    last = run / "checkpoints" / "last"
    policy = load(last)
    assert (policy.name, policy.config.head, policy.config.task) == (
        "ppo",
        "mlp",
        "humanoid_balance",
    )
    short = ["episodes=2", "num_envs=2", "video_episodes=0", "task.episode_length=20"]
    capsys.readouterr()

    assert main(["eval", f"checkpoint={last}", "sweep=randomization", *short]) == 0
    report = json.loads((run / "eval" / "report.json").read_text())
    assert (report["policy"], report["head"]) == ("ppo", "mlp")
    assert report["sweep"]["task"] == "humanoid_balance"
    assert report["sweep"]["terms"]["friction"] == [0.3, 1.25]
    settings = report["tasks"]
    assert list(settings) == ["nominal", *report["sweep"]["terms"], "all"]
    assert len(settings) == 13  # 6 randomization + 5 perturbation terms of humanoid_balance
    for entry in settings.values():
        assert entry["summary"]["episodes"] == 2 and max(entry["lengths"]) <= 20
        assert 0 < entry["summary"]["mean_survival_time"] <= 20 * 0.02 + 1e-6
    # the same seed for every setting: pushes (first at 5 s) never come in a 0.4 s episode, so
    # that setting replays the nominal episodes exactly
    assert settings["push_velocity"]["returns"] == settings["nominal"]["returns"]
    assert settings["mass"]["returns"] != settings["nominal"]["returns"]
    out = capsys.readouterr().out
    assert "humanoid_balance under sweep=randomization" in out and "survival" in out

    # the plain path, from the .old copy a crash between a checkpoint's renames leaves behind
    best = run / "checkpoints" / "best"
    best.rename(best.with_name("best.old"))
    assert main(["eval", f"checkpoint={best}", *short, f"out={tmp_path / 'plain'}"]) == 0
    report = json.loads((tmp_path / "plain" / "report.json").read_text())
    assert report["checkpoint"].endswith("best.old") and list(report["tasks"]) == [
        "humanoid_balance"
    ]
    assert report["tasks"]["humanoid_balance"]["summary"]["episodes"] == 2


@pytest.mark.slow
def test_pipeline_produces_the_report_folder(tmp_path, capsys):
    args = ["pipeline", f"runs={tmp_path}", "name=p", "episodes=4", "eval_episodes=2"]
    args += [*TINY, "algo.steps=4", "eval_every=0", "eval_envs=2", "video_episodes=1"]
    args += ["residual.env_steps=64", "residual.num_envs=4", "residual.eval_every=32"]
    args += ["residual.algo.warmup_env_steps=32", "residual.algo.utd=0.05"]
    args += ["residual.base_noise_scale=0", "residual.algo_config=residual_arm_push"]
    assert main([*args, "task.episode_length=10"]) == 0
    root = tmp_path / "p"
    result = json.loads((root / "pipeline.json").read_text())
    assert result["expert"]["episodes"] == 4
    assert result["eval"]["arm_push"]["episodes"] == 2
    res = result["residual"]
    assert [h["env_steps"] for h in res["history"]] == [0, 32, 64]
    # No update before env step 32 (the warm-up): the zero-initialized residual acts as the base,
    # and both are evaluated on the same episodes.
    assert res["episodes"] == 2 and res["history"][1]["success"] == res["base_success"]
    summary = (root / "summary.md").read_text()
    assert "success" in summary and "eval/success.png" in summary
    assert "| residual RL | 64 env steps" in summary and "residual/success.png" in summary
    for path in (
        "data/meta/info.json",
        "bc/checkpoints/last/model.safetensors",
        "eval/report.json",
        "residual/success.png",
        "residual/checkpoints/last/residual.safetensors",
    ):
        assert (root / path).is_file()
    meta = json.loads((root / "residual/checkpoints/last/config.json").read_text())
    assert meta["base_noise_scale"] == 0  # the stage ran the base deterministically
    # the stage's recipe is configs/algo/residual_arm_push.yaml, residual.algo.* overriding it
    assert meta["algo"]["action_scale_per_dim"] == [0.3, 0.3, 0.3, 0, 0, 0, 0]
    assert meta["algo"]["utd"] == 0.05 and meta["algo"]["env_steps"] == 64
    # A second run refuses to clobber the first without overwrite=true.
    assert main(args) == 2
    assert "overwrite=true" in capsys.readouterr().err
    # A typo in a policy field fails before the old run is deleted or anything is collected.
    assert main([*args, "overwrite=true", "policy.horizn=8"]) == 2
    assert "horizn" in capsys.readouterr().err
    assert main([*args, "overwrite=true", "residual.algo.n_stp=2"]) == 2
    assert "n_stp" in capsys.readouterr().err
    assert main([*args, "overwrite=true", "residual.num_envs=zero"]) == 2
    assert "num_envs" in capsys.readouterr().err
    assert main([*args, "overwrite=true", "residual.algo.env_steps=9"]) == 2
    assert "residual.env_steps" in capsys.readouterr().err
    assert main([*args, "overwrite=true", "residual.base_noise_scale=-1"]) == 2
    assert "residual.base_noise_scale" in capsys.readouterr().err
    assert main([*args, "overwrite=true", "residual.algo_config=nope"]) == 2
    assert "algo/nope" in capsys.readouterr().err
    assert (root / "summary.md").is_file()


def test_train_residual_runs_on_a_frozen_bc_base(trained, dataset, tmp_path, monkeypatch):
    import robot_rl.algos.residual as residual

    sampled_demos = []
    real = residual.mixed_batch

    def spy(online, demos, cfg, generator=None):
        sampled_demos.append(demos is not None and len(demos) > 0)
        return real(online, demos, cfg, generator)

    monkeypatch.setattr(residual, "mixed_batch", spy)
    out = tmp_path / "res"
    args = ["train", "residual", f"base={trained / 'checkpoints' / 'last'}", f"out={out}"]
    args += [f"demos={dataset}", "base_noise_scale=0"]
    args += ["num_envs=4", "algo.env_steps=160", "algo.warmup_env_steps=80", "algo.utd=0.05"]
    args += ["algo.critic_warmup_updates=1", "eval_every=80", "eval_episodes=2", "eval_envs=2"]
    assert main([*args, "task.episode_length=20", "heldout_episodes=3"]) == 0
    summary = json.loads((out / "residual_summary.json").read_text())
    assert not (out / "checkpoints" / "best").exists()  # no evaluation beat the base (all 0%)
    assert "heldout" not in summary
    assert [h["env_steps"] for h in summary["history"]] == [0, 80, 160]
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(out / "tb"))
    events.Reload()  # TensorBoard's success curve starts at the base
    logged = events.Scalars("eval/success_rate")
    assert [e.step for e in logged] == [h["env_steps"] for h in summary["history"]]
    assert [e.value for e in logged] == pytest.approx([h["success"] for h in summary["history"]])
    meta = json.loads((out / "checkpoints" / "last" / "config.json").read_text())
    assert meta["steps"] == 160 and meta["task"] == "arm_push" and meta["base_noise_scale"] == 0
    assert sampled_demos and all(sampled_demos)  # every update drew from the demonstrations
    assert summary["select"] == "success_rate" and "mean_length" in summary["best"]

    # the residual checkpoint loads without pickle and acts like the learner that saved it
    from robot_rl.algos.residual_job import load_residual

    learner, meta = load_residual(out / "checkpoints" / "last")
    assert meta["base"] == str((trained / "checkpoints" / "last").resolve())
    assert learner.obs_mean.shape == (40,)
    # base + residual evaluates through `robot-rl eval residual=` (the base from its config)
    ev = tmp_path / "res_eval"
    args = ["eval", f"residual={out / 'checkpoints' / 'last'}", "episodes=2", "num_envs=2"]
    assert main([*args, f"out={ev}", "video_episodes=0", "task.episode_length=10"]) == 0
    report = json.loads((ev / "report.json").read_text())
    assert report["residual"] == str(out / "checkpoints" / "last")
    assert report["tasks"]["arm_push"]["summary"]["episodes"] == 2
    # ... sampling the base as the residual was trained with it, unless told otherwise
    assert report["noise_scale"] == 0
    assert main([*args, f"out={ev}", "video_episodes=0", "episodes=1", "noise_scale=0.5"]) == 0
    assert json.loads((ev / "report.json").read_text())["noise_scale"] == 0.5


def test_train_residual_resumes_from_its_last_checkpoint(trained, tmp_path, capsys):
    import shutil

    from robot_rl.algos.residual_job import load_residual

    out, base = tmp_path / "res", trained / "checkpoints" / "last"
    args = ["train", "residual", f"base={base}", "num_envs=4", "heldout_episodes=0"]
    args += ["algo.warmup_env_steps=40", "algo.utd=0.25", "algo.critic_warmup_updates=1"]
    args += ["eval_every=50", "eval_episodes=2", "eval_envs=2", "task.episode_length=20"]
    assert main([*args, f"out={out}", "algo.env_steps=60"]) == 0
    last = out / "checkpoints" / "last"
    # one update per vector step of 4 envs once the 40 warm-up steps are done: 5 by step 60
    assert json.loads((last / "trainer.json").read_text())["updates"] == 5
    assert main([*args, "algo.env_steps=160", f"resume={last}"]) == 0  # out: the run's own
    summary = json.loads((out / "residual_summary.json").read_text())
    # the base's entry is kept, and evaluations fall where an unbroken run's would (100, 152)
    assert [h["env_steps"] for h in summary["history"]] == [0, 52, 60, 100, 152, 160]
    trainer = json.loads((last / "trainer.json").read_text())
    assert trainer["updates"] == 30  # counting on from 5, as one run of 160 steps would
    assert trainer["replay_rows"] == 40
    assert load_residual(last)[1]["steps"] == 160

    # what does not fit is refused in one line, before any training
    more = [*args, "algo.env_steps=240", f"resume={last}"]
    capsys.readouterr()
    assert main([*more, "num_envs=2"]) == 2
    assert "does not fit this job" in capsys.readouterr().err
    assert main([*more, "algo.residual_penalty=0.5"]) == 2
    assert "the run had algo.residual_penalty=0.0" in capsys.readouterr().err
    assert main([*more, f"out={tmp_path / 'elsewhere'}"]) == 2
    assert "continues the run in" in capsys.readouterr().err
    other = tmp_path / "other_base"
    shutil.copytree(base, other)
    assert main([*more, f"base={other}"]) == 2
    assert "the run had base=" in capsys.readouterr().err
    bare = tmp_path / "bare" / "checkpoints" / "last"
    shutil.copytree(last, bare)
    (bare / "trainer.json").unlink()  # e.g. checkpoints/best: weights only
    resume_bare = [*args, "algo.env_steps=240", f"resume={bare}"]
    assert main(resume_bare) == 2
    assert "trainer.json is missing" in capsys.readouterr().err
    (bare / "trainer.json").write_text("{")
    assert main(resume_bare) == 2
    assert "unreadable" in capsys.readouterr().err


def test_train_residual_scores_best_again_on_fresh_episodes(trained, tmp_path):
    # checkpoints/best is picked on the evaluation episodes; the run ends by evaluating the base
    # and best on episodes neither saw. Once the residual acts, its return differs from the
    # base's, so selecting on the return (or its negative) yields a best checkpoint. (The task's
    # dense reward: a tiny base never succeeds, and a zero sparse reward teaches nothing.) The
    # residual is made large and fast to learn: the tiny base's actions are often clipped at the
    # bounds, where a default-sized correction after a few updates can vanish (CI saw a run in
    # which neither evaluation's return moved).
    args = ["train", "residual", f"base={trained / 'checkpoints' / 'last'}", "num_envs=4"]
    args += ["algo.env_steps=160", "algo.warmup_env_steps=40", "algo.critic_warmup_updates=1"]
    args += ["algo.action_scale=1.0", "algo.actor_lr=1e-3"]
    args += ["algo.reward=task"]
    args += ["eval_every=80", "eval_episodes=2", "eval_envs=2", "heldout_episodes=3"]
    for select in ("mean_return", "-mean_return"):
        out = tmp_path / select
        assert main([*args, f"out={out}", f"select={select}", "task.episode_length=20"]) == 0
        summary = json.loads((out / "residual_summary.json").read_text())
        if (out / "checkpoints" / "best").is_dir():
            break
        assert "heldout" not in summary
    held = summary["heldout"]
    assert held["seed"] == 20_000 and held["base"]["episodes"] == held["best"]["episodes"] == 3
    # the final residual too, unpicked (the best one's numbers when best is the final one)
    assert held["last"]["episodes"] == 3
    if summary["best"]["env_steps"] == summary["history"][-1]["env_steps"]:
        assert held["last"] == held["best"]
    # the residual was scored, not the base again
    assert held["best"]["mean_return"] != held["base"]["mean_return"]
    # fresh episodes: not the ones the base was scored on during training
    assert held["base"]["mean_return"] != summary["base"]["mean_return"]


def test_residual_checkpoint_errors_are_one_line(tmp_path, capsys):
    from robot_rl.algos.residual_job import load_residual
    from robot_rl.core import ConfigError

    with pytest.raises(ConfigError, match="residual.safetensors is missing|config.json is missing"):
        load_residual(tmp_path)
    (tmp_path / "config.json").write_text("{}")
    (tmp_path / "residual.safetensors").write_bytes(b"\x00" * 10)
    with pytest.raises(ConfigError, match="unreadable"):
        load_residual(tmp_path)
    assert main(["eval", f"residual={tmp_path}"]) == 2
    assert "unreadable" in capsys.readouterr().err


def test_eval_and_residual_with_the_safety_chain_in_the_loop(trained, tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    ckpt = trained / "checkpoints" / "last"
    out = tmp_path / "eval"
    args = ["eval", f"checkpoint={ckpt}", "episodes=3", "num_envs=3", f"out={out}", "safety=arm"]
    assert main([*args, "video_episodes=0", "task.episode_length=12"]) == 0
    safety = json.loads((out / "report.json").read_text())["tasks"]["arm_push"]["safety"]
    assert "safety/rate_limiter/rate" in safety and "violations/workspace" in safety
    assert safety["violations/joint_position"] == 0.0
    # overrides reach the composed safety config; a bad one is a one-line error
    assert main([*args, "safety.joint_margin=9.0", "task.episode_length=12"]) == 2
    res = tmp_path / "res"
    args = ["train", "residual", f"base={ckpt}", f"out={res}", "safety=arm", "num_envs=2"]
    args += ["algo.env_steps=40", "algo.warmup_env_steps=20", "algo.utd=0.05"]
    args += ["algo.critic_warmup_updates=1", "eval_every=40", "eval_episodes=2", "eval_envs=2"]
    assert main([*args, "task.episode_length=10"]) == 0
    events = EventAccumulator(str(res / "tb"))
    events.Reload()
    assert "safety/rate_limiter/rate" in events.Tags()["scalars"]
