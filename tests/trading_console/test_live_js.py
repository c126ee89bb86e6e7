"""console/static/console/live.js under Node with a stand-in WebSocket and DOM: decimal formatting, and the
re-subscribe (snapshot reload) on a connect, a skipped frame and a seq that goes backwards; a revoked topic and a
socket closed for lost access."""

from __future__ import annotations

import json
import shutil
import subprocess

import pytest

from tests.conftest import ROOT

LIVE_JS = ROOT / "console" / "static" / "console" / "live.js"

HARNESS = """
const sent = [];
let socket = null;
globalThis.document = {
  getElementById: () => null, body: { dataset: {} }, dispatchEvent() {}, querySelector: () => null,
};
globalThis.window = {};
let reloads = 0;
let timers = 0;
globalThis.location = { protocol: "http:", host: "test", reload() { reloads += 1; } };
globalThis.CustomEvent = class {};
globalThis.setInterval = () => 0;
globalThis.setTimeout = () => { timers += 1; return 0; };
globalThis.WebSocket = class {
  static OPEN = 1;
  constructor() { this.readyState = 0; this.listeners = {}; socket = this; }  // open once "hello" arrives
  addEventListener(type, fn) { (this.listeners[type] ||= []).push(fn); }
  send(text) { sent.push(JSON.parse(text)); }
};
const { Live } = await import(process.argv[2]);
const deliver = (message) => socket.listeners.message.forEach((fn) => fn({ data: JSON.stringify(message) }));
const seen = [];
Live.subscribe(["pnl", "fills"], (topic, data) => seen.push([topic, data]));
socket.readyState = 1;
deliver({ type: "hello" });
deliver({ type: "snapshot", frame: 1, server_ts: 1, topics: ["pnl", "fills"],
          updates: [{ topic: "pnl", seq: 5, ts: 1, data: { v: 1 } }] });
deliver({ type: "batch", frame: 2, server_ts: 1, updates: [{ topic: "pnl", seq: 7, ts: 1, data: { v: 2 } }] });
const afterInOrder = sent.length;
deliver({ type: "batch", frame: 4, server_ts: 1, updates: [{ topic: "pnl", seq: 9, ts: 1, data: { v: 3 } }] });
const afterGap = sent.length;
deliver({ type: "batch", frame: 5, server_ts: 1, updates: [{ topic: "pnl", seq: 2, ts: 1, data: { v: 4 } }] });
const afterBackwards = sent.length;
deliver({ type: "error", code: "TOPIC_REVOKED", reason: "fills: needs a desk",
          refused: [{ topic: "fills", code: "TOPIC_FORBIDDEN", reason: "needs a desk" }] });
const reloadsAfterRevoke = reloads;
deliver({ type: "hello" });  // a reconnect: re-subscribes to what is left
const resubscribedAfterRevoke = sent.slice(afterBackwards);
const timersBeforeClose = timers;
socket.listeners.close.forEach((fn) => fn({ code: 4401 }));
const closed = { reloads: reloads - reloadsAfterRevoke, reconnects: timers - timersBeforeClose };
// A handshake refused while the page was away arrives as 1006 on a socket that never opened: the page asks
// whether its own URL still answers, and reloads (to the login page) only when it redirects.
const settle = () => new Promise((resolve) => setImmediate(resolve));
const reloadsBeforeRefusals = reloads;
globalThis.fetch = async () => { throw new TypeError("server away"); };
socket.listeners.close.forEach((fn) => fn({ code: 1006 }));
await settle();
const reloadsWhileServerAway = reloads - reloadsBeforeRefusals;
globalThis.fetch = async () => ({ type: "opaqueredirect", status: 0 });
socket.listeners.close.forEach((fn) => fn({ code: 1006 }));
await settle();
const reloadsWhenSignedOut = reloads - reloadsBeforeRefusals;
const formats = [["0E-12", 2], ["65010.200000000000", null], ["-3.255", 2], ["1234.5", 2], ["-0.001", 2],
                 ["999.995", 2], ["0.002000000000", null], ["65010", 1], ["-0.5", null],
                 ["<img src=x onerror=alert(1)>", null], ["12abc", 2]]
  .map(([v, p]) => Live.decimal(v, p === null ? undefined : p));
const signs = ["-1", "0.000", "2"].map(Live.signClass);
const sums = [Live.add("0.1", "0.2"), Live.sub("0E-12", "1.5"), Live.add("-0.000000000001", "12345678901234.5")];
console.log(JSON.stringify({ sent, afterInOrder, afterGap, afterBackwards, seen, formats, signs, reloadsAfterRevoke,
                             resubscribedAfterRevoke, closed, liveClosed: document.body.dataset.liveClosed,
                             reloadsWhileServerAway, reloadsWhenSignedOut, sums }));
"""


@pytest.fixture
def run():
    node = shutil.which("node")
    if node is None:
        pytest.fail("node is not installed (bin/setup installs it for htmx and uPlot)")

    def go(tmp_path) -> dict:
        harness = tmp_path / "harness.mjs"
        harness.write_text(HARNESS)
        out = subprocess.run([node, str(harness), str(LIVE_JS)], capture_output=True, text=True, timeout=60, check=True)
        return json.loads(out.stdout.strip().splitlines()[-1])

    return go


def test_a_connect_subscribes_to_every_topic_the_page_asked_for(run, tmp_path):
    result = run(tmp_path)

    assert result["sent"][0] == {"type": "subscribe", "topics": ["pnl", "fills"]}
    assert ["fills", None] in result["seen"]  # told that nothing was published for it yet


def test_a_skipped_frame_makes_the_page_reload_the_snapshot(run, tmp_path):
    result = run(tmp_path)

    assert result["afterInOrder"] == 1  # frames 1, 2: nothing to do
    assert result["afterGap"] == 2  # frame 3 missing: subscribe again
    assert result["sent"][1] == {"type": "subscribe", "topics": ["pnl", "fills"]}
    assert ["pnl", {"v": 3}] not in result["seen"]  # the frame after a gap is not trusted; the snapshot will come


def test_a_seq_going_backwards_makes_the_page_reload_the_snapshot_and_is_not_shown(run, tmp_path):
    result = run(tmp_path)

    assert result["afterBackwards"] == 3
    assert ["pnl", {"v": 4}] not in result["seen"]
    assert [item for item in result["seen"] if item[0] == "pnl"] == [["pnl", {"v": 1}], ["pnl", {"v": 2}]]


def test_decimal_strings_are_formatted_without_floating_point(run, tmp_path):
    result = run(tmp_path)

    assert result["formats"][:-2] == [
        "0.00", "65,010.2", "\u22123.26", "1,234.50", "0.00", "1,000.00", "0.002", "65,010.0", "\u22120.5",
    ]  # fmt: skip
    assert result["signs"] == ["neg", "zero", "pos"]


def test_decimal_strings_are_added_exactly_even_where_floating_point_would_round(run, tmp_path):
    result = run(tmp_path)

    assert result["sums"] == ["0.300000000000", "-1.500000000000", "12345678901234.499999999999"]


def test_text_that_is_not_a_number_is_shown_as_a_dash_never_passed_into_the_page(run, tmp_path):
    result = run(tmp_path)

    assert result["formats"][-2:] == ["\u2014", "\u2014"]


def test_a_revoked_topic_is_never_asked_for_again_and_the_page_reloads(run, tmp_path):
    result = run(tmp_path)

    assert result["reloadsAfterRevoke"] == 1
    assert result["resubscribedAfterRevoke"] == [{"type": "subscribe", "topics": ["pnl"]}]


def test_a_socket_closed_because_the_user_signed_out_is_not_reopened_but_the_page_reloads(run, tmp_path):
    result = run(tmp_path)

    assert result["closed"] == {"reloads": 1, "reconnects": 0}
    assert result["liveClosed"] == "4401"


def test_a_refused_handshake_reloads_the_page_only_when_the_session_is_gone(run, tmp_path):
    result = run(tmp_path)

    assert result["reloadsWhileServerAway"] == 0
    assert result["reloadsWhenSignedOut"] == 1
