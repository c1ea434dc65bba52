"""``s2kit append``, ``read``, ``check-tail``, ``fence`` and ``trim`` against lite."""

from __future__ import annotations

import base64
import json
import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pathlib

    from .conftest import Cli


def test_append_text_from_stdin_and_read_back(cli: Cli, basin: str) -> None:
    uri = f"s2://{basin}/greetings"
    r = cli.ok("append", uri, stdin="hello\nworld\r\n\nlast line without newline")
    assert r.out == f"appended 4 records to {uri}: seq_num 0..3, tail 4\n"
    read = cli.ok("read", uri)
    assert read.out == "hello\nworld\n\nlast line without newline\n"
    assert read.err == ""


def test_append_one_record_and_json_summary(cli: Cli, basin: str) -> None:
    uri = f"s2://{basin}/one"
    assert (
        cli.ok("append", uri, stdin="x\n").out == f"appended 1 record to {uri}: seq_num 0, tail 1\n"
    )
    summary = cli.ok("--json", "append", uri, stdin="y\nz\n").json
    assert summary["records"] == 2
    assert (summary["first_seq_num"], summary["last_seq_num"]) == (1, 2)
    assert summary["tail"]["seq_num"] == 3


def test_append_empty_input(cli: Cli, basin: str) -> None:
    r = cli.ok("append", f"s2://{basin}/empty", stdin="")
    assert r.out == ""
    assert r.err == "s2kit append: no input records; nothing appended\n"
    assert cli.ok("--json", "append", f"s2://{basin}/empty", stdin="").json == {"records": 0}


def test_append_from_file_json_round_trip(cli: Cli, basin: str, tmp_path: pathlib.Path) -> None:
    src = tmp_path / "records.jsonl"
    src.write_text(
        '{"body": "first", "headers": [["k", "v"], ["k", "w"]], "timestamp": 1000}\n'
        "\n"
        '{"body": "second", "timestamp": 2000}\n'
        '{"headers": [["only", "headers"]], "timestamp": 3000}\n'
    )
    uri = f"s2://{basin}/json"
    cli.ok("append", uri, "--format", "json", "--input", str(src))
    out = cli.ok("read", uri, "--format", "json").lines
    records = [json.loads(line) for line in out]
    assert records == [
        {"seq_num": 0, "timestamp": 1000, "headers": [["k", "v"], ["k", "w"]], "body": "first"},
        {"seq_num": 1, "timestamp": 2000, "headers": [], "body": "second"},
        {"seq_num": 2, "timestamp": 3000, "headers": [["only", "headers"]], "body": ""},
    ]
    # What read prints, append accepts: copy the stream record for record.
    copy = f"s2://{basin}/json-copy"
    cli.ok("append", copy, "--format", "json", stdin="\n".join(out))
    assert cli.ok("--json", "read", copy).lines == out  # --json implies --format json


def test_base64_format_is_binary_safe(cli: Cli, basin: str) -> None:
    body = bytes(range(256))
    line = json.dumps(
        {
            "body": base64.b64encode(body).decode(),
            "headers": [
                [base64.b64encode(b"\x00name").decode(), base64.b64encode(b"\xff").decode()]
            ],
        }
    )
    uri = f"s2://{basin}/binary"
    cli.ok("append", uri, "--format", "base64", stdin=line)
    got = json.loads(cli.ok("read", uri, "--format", "base64").out)
    assert base64.b64decode(got["body"]) == body
    assert [[base64.b64decode(x) for x in h] for h in got["headers"]] == [[b"\x00name", b"\xff"]]


def test_bad_input_lines_are_usage_errors(cli: Cli, basin: str) -> None:
    uri = f"s2://{basin}/bad"
    cases = {
        ("json", '{"body": "ok"}\nnot json\n'): "line 2: not valid JSON",
        ("json", "[1, 2]"): 'line 1: expected a JSON object like {"body": "..."}',
        ("json", '{"bdy": "typo"}'): "line 1: unknown field 'bdy'",
        ("json", '{"headers": [["a"]]}'): "line 1: headers must be a list of [name, value] pairs",
        ("json", '{"timestamp": -1}'): "line 1: timestamp must be a non-negative integer",
        ("json", '{"body": 5}'): "line 1: body must be a string",
        ("base64", '{"body": "not base64!"}'): "line 1: body is not valid base64",
    }
    for (fmt, data), message in cases.items():
        r = cli("append", uri, "--format", fmt, stdin=data)
        assert r.code == 2, (fmt, data)
        assert message in r.err, r.err
        assert r.err.count("\n") == 1
    # The good line before the bad one was appended, and the message says so.
    assert (
        "the 1 records before it were appended"
        in cli("append", uri, "--format", "json", stdin='{"body": "ok"}\nnot json\n').err
    )
    assert cli.ok("read", uri).out == "ok\nok\n"


def test_record_too_large_is_a_usage_error(cli: Cli, basin: str) -> None:
    r = cli("append", f"s2://{basin}/big", stdin=b"x" * (1024 * 1024) + b"\n")
    assert r.code == 2
    assert r.err == (
        "s2kit append: error: line 1: record of 1048584 metered bytes exceeds the batch limit"
        " of 1048576\n"
    )


def test_missing_input_file(cli: Cli, basin: str, tmp_path: pathlib.Path) -> None:
    r = cli("append", f"s2://{basin}/s", "--input", str(tmp_path / "nope.txt"))
    assert r.code == 2
    assert (
        r.err
        == f"s2kit append: error: cannot read {tmp_path / 'nope.txt'}: No such file or directory\n"
    )


def test_match_seq_num(cli: Cli, basin: str) -> None:
    uri = f"s2://{basin}/conditional"
    cli.ok("append", uri, "--match-seq-num", "0", stdin="a\nb\n")
    cli.ok("append", uri, "--match-seq-num", "2", stdin="c\n")
    r = cli("append", uri, "--match-seq-num", "2", stdin="late\n")
    assert r.code == 1
    assert r.err == (
        "s2kit append: error: append condition failed: seq_num mismatch: next seq_num is 3\n"
    )
    assert cli.ok("read", uri).out == "a\nb\nc\n"


def test_fence_and_fencing_token(cli: Cli, basin: str) -> None:
    uri = f"s2://{basin}/fenced"
    cli.ok("append", uri, stdin="before\n")
    assert cli.ok("fence", uri, "writer-1").out == (
        f"fenced {uri} with token 'writer-1' at seq_num 1\n"
    )
    r = cli("append", uri, "--fencing-token", "writer-0", stdin="stale\n")
    assert r.code == 1
    assert "append condition failed: fencing token mismatch" in r.err
    cli.ok("append", uri, "--fencing-token", "writer-1", stdin="current\n")
    # Re-fencing needs the current token.
    r = cli("fence", uri, "writer-2", "--fencing-token", "nope")
    assert r.code == 1
    assert "fencing token mismatch" in r.err
    fenced = cli.ok("--json", "fence", uri, "writer-2", "--fencing-token", "writer-1").json
    assert fenced["fencing_token"] == "writer-2"
    assert fenced["ack"]["start"]["seq_num"] == 3
    # Text reads show command records on stderr, JSON reads include them.
    text = cli.ok("read", uri)
    assert text.out == "before\ncurrent\n"
    assert text.err == (
        "s2kit: seq_num 1: fence command record 'writer-1'\n"
        "s2kit: seq_num 3: fence command record 'writer-2'\n"
    )
    records = [json.loads(line) for line in cli.ok("read", uri, "--format", "json").lines]
    assert records[1]["headers"] == [["", "fence"]]
    assert records[1]["body"] == "writer-1"


def test_trim(cli: Cli, basin: str) -> None:
    uri = f"s2://{basin}/trimmed"
    cli.ok("append", uri, stdin="".join(f"r{i}\n" for i in range(5)))
    assert cli.ok("trim", uri, "3").out == (
        f"trimmed {uri} before seq_num 3 (command at seq_num 5)\n"
    )
    deadline = time.monotonic() + 10
    while (first := cli.ok("read", uri, "--format", "json", "-n", "1").json)["seq_num"] != 3:
        assert time.monotonic() < deadline, first
        time.sleep(0.05)
    assert first["body"] == "r3"
    assert cli.ok("--json", "trim", uri, "4").json["trim_point"] == 4


def test_check_tail(cli: Cli, basin: str) -> None:
    uri = f"s2://{basin}/tail"
    cli.ok("append", uri, "--format", "json", stdin='{"body": "a", "timestamp": 1234}\n')
    cli.ok("append", uri, "--format", "json", stdin='{"body": "b", "timestamp": 1796436181227}')
    assert cli.ok("check-tail", uri).lines == [
        "next seq_num    2",
        "last timestamp  2026-12-05T02:03:01.227Z (1796436181227 ms)",
    ]
    assert cli.ok("--json", "check-tail", uri).json == {"seq_num": 2, "timestamp": 1796436181227}
    cli.ok("create-stream", f"s2://{basin}/empty")
    assert cli.ok("check-tail", f"s2://{basin}/empty").out == (
        "next seq_num    0 (the stream is empty)\n"
    )
    r = cli("check-tail", f"s2://{basin}/never-written")  # the basin creates on append only
    assert r.code == 1
    assert "[stream_not_found, HTTP 404]" in r.err


def test_bad_uris_and_flags(cli: Cli, basin: str) -> None:
    cases = {
        ("append", f"{basin}/s"): "malformed URI",
        ("read", f"s2://{basin}"): "the stream name is missing",
        ("append", f"s2://{basin}/s", "--format", "xml"): "invalid format 'xml'",
        ("append", f"s2://{basin}/s", "--match-seq-num", "x"): "expected an integer, got 'x'",
        ("trim", f"s2://{basin}/s"): "required: SEQ_NUM",
        ("fence", f"s2://{basin}/s"): "required: NEW_TOKEN",
        ("check-tail", "s2://"): "the basin is missing",
    }
    for argv, message in cases.items():
        r = cli(*argv)
        assert r.code == 2, argv
        assert message in r.err, r.err
        assert r.err.count("\n") == 1
