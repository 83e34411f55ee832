"""ROS 2 node arguments: name resolution, remapping, typed parameters, parameter files."""

import pytest

from robot_rl.core.errors import ConfigError
from robot_rl.deploy.rosargs import (
    NodeOptions,
    format_param_value,
    load_params_file,
    parse_param_value,
    parse_ros_args,
)


@pytest.fixture
def arm() -> NodeOptions:
    return NodeOptions(name="arm", namespace="/robot1")


@pytest.mark.parametrize(
    ("topic", "resolved"),
    [
        ("/joint_states", "/joint_states"),  # absolute: untouched
        ("joint_states", "/robot1/joint_states"),  # relative: under the namespace
        ("cmd/raw", "/robot1/cmd/raw"),
        ("~/commands", "/robot1/arm/commands"),  # private: under namespace/name
        ("~", "/robot1/arm"),
    ],
)
def test_resolve_absolute_relative_private(arm, topic, resolved):
    assert arm.resolve(topic) == resolved


def test_resolve_in_root_namespace():
    node = NodeOptions(name="arm")
    assert node.fqn == "/arm"
    assert node.resolve("x") == "/x"
    assert node.resolve("~/x") == "/arm/x"


@pytest.mark.parametrize("bad", ["a//b", "1abc", "a/2b", "a b", "a/", "", "~x", "a/~/b", "a-b"])
def test_invalid_topic_names_quote_the_name(arm, bad):
    with pytest.raises(ConfigError, match="invalid ROS name") as info:
        arm.resolve(bad)
    assert repr(bad) in str(info.value)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"name": "a/b"}, "node name 'a/b'"),
        ({"name": "2arm"}, "node name '2arm'"),
        ({"name": "arm", "namespace": "robot"}, "must be absolute"),
        ({"name": "arm", "namespace": "/robot/"}, "namespace '/robot/'"),
        ({"name": "arm", "namespace": "/9robot"}, "namespace '/9robot'"),
    ],
)
def test_invalid_node_name_or_namespace(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        NodeOptions(**kwargs)


def test_parse_name_namespace_and_remaps_resolved_against_final_name():
    # the remaps come before __node/__ns on the line; their private and relative names must
    # still resolve against the final name /robot1/arm
    opts = parse_ros_args(
        [
            "--ros-args",
            "-r",
            "~/commands:=/forward_controller/commands",
            "--remap",
            "state:=/joint_states",
            "-r",
            "__node:=arm",
            "-r",
            "__ns:=/robot1",
        ],
        default_name="policy",
    )
    assert (opts.name, opts.namespace, opts.fqn) == ("arm", "/robot1", "/robot1/arm")
    assert opts.remaps == {
        "/robot1/arm/commands": "/forward_controller/commands",
        "/robot1/state": "/joint_states",
    }
    assert opts.resolve("~/commands") == "/forward_controller/commands"
    assert opts.resolve("state") == "/joint_states"
    assert opts.resolve("/state") == "/state"  # a different resolved name: not remapped


def test_first_remap_rule_wins_and_other_nodes_rules_are_ignored():
    # a node prefix names the node as it ends up (me2); __node itself matches the default name
    rules = ["__node:=me2", "__node:=me3", "a:=/first", "a:=/second", "other:b:=/x"]
    rules += ["me2:c:=/y", "me:d:=/z"]
    opts = parse_ros_args(["--ros-args", *[x for r in rules for x in ("-r", r)]], "me")
    assert opts.name == "me2"
    assert opts.resolve("a") == "/first"
    assert opts.resolve("b") == "/b"
    assert opts.resolve("c") == "/y"
    assert opts.resolve("d") == "/d"


def test_relative_ns_is_made_absolute_and_non_ros_args_are_kept():
    opts = parse_ros_args(
        ["--verbose", "--ros-args", "-r", "__ns:=robot", "--", "extra"], default_name="n"
    )
    assert opts.namespace == "/robot"
    assert opts.args == ["--verbose", "extra"]


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("1", 1),
        ("-3", -3),
        ("1.5", 1.5),
        ("true", True),
        ("false", False),
        ("[1, 2]", [1, 2]),
        ("[0.5,1.5]", [0.5, 1.5]),
        ("hello", "hello"),
        ("'1'", "1"),  # quoted: a string, as in YAML
        ("", ""),
        ("a: b", "a: b"),  # a mapping is not a parameter value: kept as text
    ],
)
def test_param_values_are_yaml_typed(text, value):
    parsed = parse_param_value(text)
    assert parsed == value and type(parsed) is type(value)


@pytest.mark.parametrize("value", ["hello", "1", "true", "", 1, 2.5, True, [1, 2], ["a", "b"]])
def test_format_param_value_round_trips(value):
    back = parse_param_value(format_param_value(value))
    assert back == value and type(back) is type(value)


def test_params_typed_getters_and_missing(tmp_path):
    opts = parse_ros_args(
        ["--ros-args", "-p", "rate:=50", "--param", "gain:=0.5", "-p", "on:=true", "-p", "t:=x"],
        default_name="n",
    )
    assert opts.params == {"rate": 50, "gain": 0.5, "on": True, "t": "x"}
    assert opts.param_float("rate") == 50.0  # an integer is a valid float
    assert opts.param_int("rate") == 50
    assert opts.param_bool("on") is True
    assert opts.param_str("t") == "x"
    assert opts.param("absent", 7) == 7
    with pytest.raises(ConfigError, match="parameter 'absent' is not set"):
        opts.param("absent")
    with pytest.raises(ConfigError, match="'gain' must be an integer, got 0.5"):
        opts.param_int("gain")
    with pytest.raises(ConfigError, match="'t' must be a number"):
        opts.param_float("t")


PARAMS_YAML = """\
/**:
  ros__parameters:
    rate: 10
    use_sim_time: false
/**/arm:
  ros__parameters:
    rate: 20
    limits: {velocity: 1.5, effort: [1, 2]}
/robot1/arm:
  ros__parameters:
    rate: 30
arm:
  ros__parameters:
    root_only: true
/robot1/*:
  ros__parameters:
    one_level: 1
/other/arm:
  ros__parameters:
    rate: 99
"""


def test_params_file_wildcards_and_fqn(tmp_path):
    path = tmp_path / "params.yaml"
    path.write_text(PARAMS_YAML)
    # wildcard entries apply first, the exact name last; nested mappings flatten to dots
    assert load_params_file(path, "/robot1/arm") == {
        "rate": 30,
        "use_sim_time": False,
        "limits.velocity": 1.5,
        "limits.effort": [1, 2],
        "one_level": 1,
    }
    # a plain key is a node in the root namespace; /**/arm also matches zero namespace tokens
    root = load_params_file(path, "/arm")
    assert root["root_only"] is True and root["rate"] == 20 and "one_level" not in root
    # /robot1/* matches one token only; /** matches everything
    assert load_params_file(path, "/robot1/sub/gripper") == {"rate": 10, "use_sim_time": False}


def test_exact_node_entry_beats_wildcard_whatever_the_file_order(tmp_path):
    path = tmp_path / "params.yaml"
    path.write_text("/arm:\n  ros__parameters: {rate: 1}\n/**:\n  ros__parameters: {rate: 2}\n")
    assert load_params_file(path, "/arm") == {"rate": 1}
    assert load_params_file(path, "/gripper") == {"rate": 2}


def test_sources_apply_in_command_line_order(tmp_path):
    path = tmp_path / "params.yaml"
    path.write_text(PARAMS_YAML)
    argv = ["--ros-args", "-r", "__node:=arm", "-p", "rate:=1", "--params-file", str(path)]
    assert parse_ros_args(argv, "n").params["rate"] == 20  # the file came later
    argv = ["--ros-args", "--params-file", str(path), "-p", "rate:=1", "-r", "__node:=arm"]
    opts = parse_ros_args(argv, "n")
    assert opts.params["rate"] == 1  # -p came later
    assert opts.params["limits.velocity"] == 1.5  # the file was read for /arm, the final name


@pytest.mark.parametrize(
    ("content", "match"),
    [
        (None, "cannot read parameter file"),
        ("a: [1,\n", "is not valid YAML"),
        ("- 1\n", "must map node names"),
        ("/**:\n  rate: 1\n", "'/\\*\\*' must hold a 'ros__parameters' mapping"),
    ],
)
def test_bad_params_file_names_the_file(tmp_path, content, match):
    path = tmp_path / "bad.yaml"
    if content is not None:
        path.write_text(content)
    with pytest.raises(ConfigError, match=match) as info:
        parse_ros_args(["--ros-args", "--params-file", str(path)], "n")
    assert str(path) in str(info.value)


@pytest.mark.parametrize(
    ("argv", "match"),
    [
        (["--ros-args", "-r", "nonsense"], "must look like 'from:=to'"),
        (["--ros-args", "-r", "a:="], "must look like 'from:=to'"),
        (["--ros-args", "-p"], "-p needs a value"),
        (["--ros-args", "--bogus"], "unknown ROS argument '--bogus'"),
        (["--ros-args", "-r", "__node:=bad/name"], "node name 'bad/name'"),
        (["--ros-args", "-r", "a//b:=c"], "invalid ROS name 'a//b'"),
    ],
)
def test_bad_ros_args(argv, match):
    with pytest.raises(ConfigError, match=match):
        parse_ros_args(argv, "n")
