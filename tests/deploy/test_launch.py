"""Launch files without ROS: XML/YAML parsing with ros2 launch semantics, and the process runner."""

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from robot_rl.core.errors import ConfigError
from robot_rl.deploy.launch import NodeSpec, parse_launch, run_launch, share_dir
from robot_rl.deploy.rosargs import parse_ros_args

REPO = Path(__file__).resolve().parents[2]

PARAMS = """\
/**:
  ros__parameters:
    rate: 10
    gain: 0.1
"""

# every supported construct once; the YAML below is the same launch description
LAUNCH_XML = """\
<launch>
  <arg name="robot" default="arm" description="robot profile"/>
  <arg name="rate" default="50"/>
  <arg name="use_gripper" default="true"/>
  <let name="ctrl" value="$(var robot)_controller"/>
  <node pkg="robot_rl_ros" exec="policy" name="policy" namespace="$(var robot)" output="screen">
    <param from="$(dirname)/params.yaml"/>
    <param name="rate" value="$(var rate)"/>
    <param name="checkpoint" value="$(env ROBOT_RL_TEST_CKPT /tmp/ckpt)"/>
    <param name="limits">
      <param name="velocity" value="1.5"/>
      <param name="joints" value="[1, 2]"/>
    </param>
    <remap from="~/action" to="/$(var ctrl)/commands"/>
  </node>
  <group>
    <push_ros_namespace namespace="sim"/>
    <let name="robot" value="inner"/>
    <node pkg="robot_rl_ros" exec="gripper" name="gripper_$(var robot)" if="$(var use_gripper)"/>
    <node pkg="robot_rl_ros" exec="no_gripper" name="no_gripper" unless="$(var use_gripper)"/>
  </group>
  <node pkg="robot_rl_ros" exec="monitor" name="$(var robot)_monitor"/>
  <group scoped="false">
    <let name="leaked" value="yes"/>
  </group>
  <node pkg="robot_rl_ros" exec="echo" name="echo_$(var leaked)" namespace="/abs"/>
</launch>
"""

LAUNCH_YAML = """\
launch:
  - arg: {name: robot, default: arm, description: robot profile}
  - arg: {name: rate, default: "50"}
  - arg: {name: use_gripper, default: "true"}
  - let: {name: ctrl, value: "$(var robot)_controller"}
  - node:
      pkg: robot_rl_ros
      exec: policy
      name: policy
      namespace: $(var robot)
      output: screen
      param:
        - from: $(dirname)/params.yaml
        - {name: rate, value: $(var rate)}
        - {name: checkpoint, value: $(env ROBOT_RL_TEST_CKPT /tmp/ckpt)}
        - name: limits
          param:
            - {name: velocity, value: 1.5}
            - {name: joints, value: [1, 2]}
      remap:
        - {from: ~/action, to: "/$(var ctrl)/commands"}
  - group:
      children:
        - push-ros-namespace: {namespace: sim}
        - let: {name: robot, value: inner}
        - node:
            {pkg: robot_rl_ros, exec: gripper, name: "gripper_$(var robot)",
             if: $(var use_gripper)}
        - node:
            {pkg: robot_rl_ros, exec: no_gripper, name: no_gripper, unless: $(var use_gripper)}
  - node: {pkg: robot_rl_ros, exec: monitor, name: "$(var robot)_monitor"}
  - group:
      scoped: false
      children:
        - let: {name: leaked, value: "yes"}
  - node: {pkg: robot_rl_ros, exec: echo, name: "echo_$(var leaked)", namespace: /abs}
"""


def _write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


@pytest.fixture
def launch_dir(tmp_path):
    _write(tmp_path, "params.yaml", PARAMS)
    _write(tmp_path, "robot.launch.xml", LAUNCH_XML)
    _write(tmp_path, "robot.launch.yaml", LAUNCH_YAML)
    return tmp_path


def _expected(tmp_path: Path) -> list[NodeSpec]:
    return [
        NodeSpec(
            "robot_rl_ros",
            "policy",
            "policy",
            "/arm",
            {
                "rate": 50,
                "checkpoint": "/tmp/ckpt",
                "limits.velocity": 1.5,
                "limits.joints": [1, 2],
            },
            [tmp_path / "params.yaml"],
            [("~/action", "/arm_controller/commands")],
        ),
        # the group's pushed namespace and let stay inside it
        NodeSpec("robot_rl_ros", "gripper", "gripper_inner", "/sim"),
        NodeSpec("robot_rl_ros", "monitor", "arm_monitor", "/"),
        # scoped="false" lets the let out; an absolute node namespace is kept as is
        NodeSpec("robot_rl_ros", "echo", "echo_yes", "/abs"),
    ]


@pytest.mark.parametrize("name", ["robot.launch.xml", "robot.launch.yaml"])
def test_parse_every_construct(launch_dir, monkeypatch, name):
    monkeypatch.delenv("ROBOT_RL_TEST_CKPT", raising=False)
    specs = parse_launch(launch_dir / name)
    assert specs == _expected(launch_dir)
    assert specs[0].source == launch_dir / name


@pytest.mark.parametrize("name", ["robot.launch.xml", "robot.launch.yaml"])
def test_overrides_and_env(launch_dir, monkeypatch, name):
    monkeypatch.setenv("ROBOT_RL_TEST_CKPT", "/ckpt/best")
    specs = parse_launch(launch_dir / name, {"robot": "rc_car", "rate": "2.5", "use_gripper": "0"})
    policy = specs[0]
    assert policy.namespace == "/rc_car"
    assert policy.params["rate"] == 2.5 and policy.params["checkpoint"] == "/ckpt/best"
    assert policy.remaps == [("~/action", "/rc_car_controller/commands")]
    # use_gripper:=0 turns the if-node off and the unless-node on
    assert [(s.exec, s.namespace) for s in specs[1:3]] == [("no_gripper", "/sim"), ("monitor", "/")]


def test_ros_args_round_trip_inline_params_override_files(launch_dir):
    policy = parse_launch(launch_dir / "robot.launch.xml")[0]
    assert policy.ros_args() == [
        "--ros-args",
        "-r",
        "__node:=policy",
        "-r",
        "__ns:=/arm",
        "--params-file",
        str(launch_dir / "params.yaml"),
        "-p",
        "rate:=50",
        "-p",
        "checkpoint:=/tmp/ckpt",
        "-p",
        "limits.velocity:=1.5",
        "-p",
        "limits.joints:=[1, 2]",
        "-r",
        "~/action:=/arm_controller/commands",
    ]
    opts = parse_ros_args(["policy", *policy.ros_args()], default_name="policy")
    assert opts.fqn == "/arm/policy"
    # rate 10 from the file's /** entry, 50 inline: inline wins; gain only in the file
    assert opts.params["rate"] == 50 and opts.params["gain"] == 0.1
    assert opts.resolve("~/action") == "/arm_controller/commands"
    assert opts.args == ["policy"]


INNER_YAML = """\
launch:
  - arg: {name: side}
  - let: {name: from_inner, value: "$(var side)"}
  - node:
      pkg: robot_rl_ros
      exec: driver
      name: driver
      param: [{from: $(dirname)/params.yaml}]
"""


def test_include_passes_args_and_is_not_scoped(tmp_path):
    _write(tmp_path, "params.yaml", PARAMS)
    _write(tmp_path, "inner.launch.yaml", INNER_YAML)
    outer = _write(
        tmp_path,
        "outer.launch.xml",
        """\
        <launch>
          <group>
            <push_ros_namespace namespace="left"/>
            <include file="$(dirname)/inner.launch.yaml">
              <arg name="side" value="left"/>
            </include>
          </group>
          <include file="$(dirname)/inner.launch.yaml">
            <arg name="side" value="right"/>
          </include>
          <node pkg="robot_rl_ros" exec="echo" name="after_$(var from_inner)"/>
        </launch>
        """,
    )
    specs = parse_launch(outer)
    assert [(s.name, s.namespace) for s in specs] == [
        ("driver", "/left"),  # the pushed namespace reaches into the include
        ("driver", "/"),
        ("after_right", "/"),  # as in ros2 launch, an include's lets stay visible after it
    ]
    assert specs[0].param_files == [tmp_path / "params.yaml"]


def test_find_pkg_share(tmp_path):
    assert share_dir("robot_rl_ros") == REPO / "ros2_ws" / "src" / "robot_rl_ros"
    assert share_dir("robot_rl") == REPO
    path = _write(
        tmp_path,
        "x.launch.xml",
        '<launch><node pkg="p" exec="e" name="n">'
        '<param name="dir" value="$(find-pkg-share robot_rl_ros)"/></node></launch>',
    )
    assert parse_launch(path)[0].params["dir"] == str(REPO / "ros2_ws" / "src" / "robot_rl_ros")
    with pytest.raises(ConfigError, match="unknown package 'no_such_pkg'"):
        share_dir("no_such_pkg")


@pytest.mark.parametrize(
    ("body", "match"),
    [
        ("<executable cmd='ls'/>", "unknown launch tag <executable> in .*bad.launch.xml"),
        ("<arg name='need'/>", "launch argument 'need' of .*bad.launch.xml is required"),
        ("<let name='x' value='$(eval 1+1)'/>", r"\$\(eval \.\.\.\) runs Python"),
        ("<let name='x' value='$(var nope)'/>", "launch argument 'nope' is not set"),
        ("<let name='x' value='$(command ls)'/>", r"unknown substitution \$\(command"),
        ("<let name='x' value='$(env ROBOT_RL_NO_SUCH_VAR)'/>", "ROBOT_RL_NO_SUCH_VAR is not set"),
        ("<node pkg='p' exec='e' respawn='true'/>", "unsupported attribute.*respawn"),
        ("<node pkg='p' exec='e'><env name='A' value='1'/></node>", "unknown child <env>"),
        ("<node pkg='p' exec='e' name='a/b'/>", "node name 'a/b'"),
        ("<node exec='e'/>", "<node> in .* needs a 'pkg' attribute"),
        ("<node pkg='p' exec='e' if='true' unless='false'/>", "both 'if' and 'unless'"),
        ("<node pkg='p' exec='e' if='maybe'/>", "if='maybe' must be true, false, 1 or 0"),
        ("<node pkg='p' exec='e'><param from='/no/such.yaml'/></node>", "/no/such.yaml does"),
        ("<node pkg='p' exec='e'><param name='x'/></node>", "needs either a value"),
        ("<arg name='a' default='x'><choice value='y'/></arg>", "must be one of \\['y'\\]"),
        ("<include file='$(dirname)/bad.launch.xml'/>", "nests too deep"),
        ("<push_ros_namespace namespace='a//b'/>", "invalid ROS namespace"),
    ],
)
def test_errors_are_one_line_and_name_the_problem(tmp_path, body, match):
    path = _write(tmp_path, "bad.launch.xml", f"<launch>{body}</launch>")
    with pytest.raises(ConfigError, match=match) as info:
        parse_launch(path)
    assert "\n" not in str(info.value)


def test_yaml_errors(tmp_path):
    path = _write(tmp_path, "bad.launch.yaml", "launch:\n  - nodes: {pkg: p, exec: e}\n")
    with pytest.raises(ConfigError, match="unknown launch tag <nodes> in .*bad.launch.yaml"):
        parse_launch(path)
    path = _write(tmp_path, "bad2.launch.yaml", "nodes: []\n")
    with pytest.raises(ConfigError, match="must be 'launch:'"):
        parse_launch(path)
    with pytest.raises(ConfigError, match="Python launch files are not supported"):
        parse_launch(tmp_path / "x.launch.py")


def test_choices_and_required_arg_given(tmp_path):
    path = _write(
        tmp_path,
        "c.launch.yaml",
        """\
        launch:
          - arg: {name: robot, choices: [arm, rc_car]}
          - node: {pkg: p, exec: e, name: $(var robot)}
        """,
    )
    assert parse_launch(path, {"robot": "rc_car"})[0].name == "rc_car"
    with pytest.raises(ConfigError, match=r"robot='humanoid' .* one of \['arm', 'rc_car'\]"):
        parse_launch(path, {"robot": "humanoid"})


# ------------------------------------------------------------------------------ processes

DUMMY_NODE = """\
import os, signal, sys, time
name, piddir, mode = sys.argv[1:4]
if mode == "stubborn":
    signal.signal(signal.SIGINT, signal.SIG_IGN)
print(f"hello from {name} launch={os.environ.get('ROBOT_RL_LAUNCH')}", flush=True)
print(f"{name} on stderr", file=sys.stderr, flush=True)
with open(os.path.join(piddir, name + ".tmp"), "w") as f:
    f.write(str(os.getpid()))
os.replace(os.path.join(piddir, name + ".tmp"), os.path.join(piddir, name))
if mode.startswith("exit"):
    time.sleep(0.2)
    sys.exit(int(mode[4:]))
try:
    while True:
        time.sleep(0.02)
except KeyboardInterrupt:
    print(f"bye from {name}", flush=True)
"""

RUNNER = """\
import sys
from robot_rl.deploy.launch import run_launch
node, piddir, launch_file = sys.argv[1:4]
def command(spec):
    return [sys.executable, node, spec.name, piddir, str(spec.params.get("mode", "run"))]
sys.exit(run_launch(launch_file, {}, command=command, sigterm_timeout=0.5))
"""


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state != "Z"


def _wait_for(predicate, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return predicate()


class _Runner:
    """``run_launch`` in a child Python process, so that it can get a real SIGINT."""

    def __init__(self, tmp_path: Path, modes: dict[str, str]) -> None:
        nodes = "".join(
            f'<node pkg="robot_rl_ros" exec="dummy" name="{name}">'
            f'<param name="mode" value="{mode}"/></node>'
            for name, mode in modes.items()
        )
        launch_file = _write(tmp_path, "procs.launch.xml", f"<launch>{nodes}</launch>")
        node, runner = _write(tmp_path, "node.py", DUMMY_NODE), _write(tmp_path, "run.py", RUNNER)
        self.piddir = tmp_path / "pids"
        self.piddir.mkdir()
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        self.proc = subprocess.Popen(
            [sys.executable, str(runner), str(node), str(self.piddir), str(launch_file)],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=env,
        )
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        names = list(modes)
        assert _wait_for(lambda: all((self.piddir / n).exists() for n in names)), self.output
        self.pids = {n: int((self.piddir / n).read_text()) for n in names}

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))

    @property
    def output(self) -> str:
        return "\n".join(self.lines)

    def interrupt(self, timeout: float = 5.0) -> tuple[int, float]:
        start = time.monotonic()
        self.proc.send_signal(signal.SIGINT)
        code = self.proc.wait(timeout=timeout)
        self._reader.join(timeout=2.0)
        return code, time.monotonic() - start

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        for pid in getattr(self, "pids", {}).values():
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)


@pytest.fixture
def runner(tmp_path):
    made: list[_Runner] = []

    def make(modes: dict[str, str]) -> _Runner:
        made.append(_Runner(tmp_path, modes))
        return made[-1]

    yield make
    for r in made:
        r.kill()


def test_sigint_stops_every_node_cleanly(runner):
    r = runner({"talker": "run", "listener": "run", "planner": "run"})
    assert all(_alive(pid) for pid in r.pids.values())
    code, elapsed = r.interrupt()
    assert code == 0, r.output
    assert elapsed < 3.0
    assert not any(_alive(pid) for pid in r.pids.values())
    for name in r.pids:
        assert f"[{name}] hello from {name} launch=1" in r.lines
        assert f"[{name}] {name} on stderr" in r.lines
        assert f"[{name}] bye from {name}" in r.lines  # it got SIGINT, not SIGKILL


def test_a_node_exiting_early_leaves_the_others_running(runner):
    r = runner({"a": "run", "b": "run", "crash": "exit3"})
    assert _wait_for(lambda: any("crash" in ln and "exit code 3" in ln for ln in r.lines))
    assert not _alive(r.pids["crash"])
    time.sleep(0.2)  # the launch must not react by stopping the others
    assert _alive(r.pids["a"]) and _alive(r.pids["b"]) and r.proc.poll() is None
    code, _ = r.interrupt()
    assert code == 1, r.output  # a node died during the launch
    assert not _alive(r.pids["a"]) and not _alive(r.pids["b"])


def test_a_node_ignoring_sigint_gets_sigterm(runner):
    r = runner({"ok": "run", "stubborn": "stubborn"})
    code, elapsed = r.interrupt()
    assert code == 1, r.output  # stopping needed SIGTERM: not a clean stop
    assert 0.4 < elapsed < 3.0  # sigterm_timeout=0.5
    assert any("stubborn still running after 0.5 s: sending SIGTERM" in ln for ln in r.lines)
    assert not any(_alive(pid) for pid in r.pids.values())


def test_launch_ends_when_every_node_finished(tmp_path):
    node = _write(tmp_path, "node.py", DUMMY_NODE)
    (tmp_path / "pids").mkdir()
    path = _write(
        tmp_path,
        "done.launch.yaml",
        """\
        launch:
          - node: {pkg: p, exec: e, name: one, param: [{name: mode, value: exit0}]}
          - node: {pkg: p, exec: e, name: two, param: [{name: mode, value: exit0}]}
        """,
    )
    lines: list[str] = []

    def command(spec: NodeSpec) -> list[str]:
        return [sys.executable, str(node), spec.name, str(tmp_path / "pids"), spec.params["mode"]]

    assert run_launch(path, {}, console=lines.append, command=command) == 0
    assert "[one] hello from one launch=1" in lines and "[two] two on stderr" in lines
    assert lines[-1] == "[launch] all nodes have exited"


def test_cli_help_and_argument_errors(capsys, tmp_path):
    from robot_rl.cli.launch import parse_args
    from robot_rl.cli.main import main

    assert main(["launch", "--help"]) == 0
    assert "usage: robot-rl launch FILE [name:=value ...]" in capsys.readouterr().out
    assert parse_args(["a.launch.xml", "robot:=arm", "rate:=", "x:=a:=b"]) == (
        Path("a.launch.xml"),
        {"robot": "arm", "rate": "", "x": "a:=b"},
    )
    assert main(["launch", "a.launch.xml", "robot=arm"]) == 2
    assert "launch arguments look like name:=value, got 'robot=arm'" in capsys.readouterr().err
    assert main(["launch", str(tmp_path / "missing.launch.xml")]) == 2
    assert "cannot read launch file" in capsys.readouterr().err
