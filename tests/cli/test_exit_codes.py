"""One exit code per kind of stop, so a script can tell a typo from a wrong setting, a refusal
and an outage (the table in docs/operations.md)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from streamfn.challenger.gate import GateError
from streamfn.cli import champion, main
from streamfn.cli.common import Exit
from streamfn.cli.produce import outcome
from streamfn.data.plan import Tally

pytestmark = pytest.mark.usefixtures("environ")


class Refusing(BaseHTTPRequestHandler):
    """An ingest that refuses every request as invalid."""

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers["Content-Length"]))
        body = b'{"detail": [{"type": "value_error", "msg": "no"}]}'
        self.send_response(422)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        """Quiet: the test reads the producer's summary, not the server's log."""


@pytest.fixture
def refusing_ingest() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Refusing)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_records_refused_are_part_of_the_work_failed(
    refusing_ingest: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("INGEST_URL", refusing_ingest)
    code = main(["produce", "--count", "4", "--batch", "2", "--model", "svm", "--give-up-s", "1"])
    assert code == Exit.FAILED == 1


def test_undelivered_records_are_an_outage_and_refused_ones_a_failure() -> None:
    assert outcome(Tally(sent=3, accepted=3)) == Exit.OK
    assert outcome(Tally(sent=3, accepted=1, rejected=2)) == Exit.FAILED
    assert outcome(Tally(sent=3, rejected=1, undelivered=2)) == Exit.OUTAGE


def test_a_wrong_flag_is_a_usage_error(capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit) as parsed:
        main(["produce", "--count", "many"])
    assert parsed.value.code == Exit.USAGE == 2
    assert main(["produce"]) == Exit.USAGE  # neither --count nor --rate
    assert "give --count N" in capsys.readouterr().err


def test_a_bad_variable_is_a_configuration_error(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    monkeypatch.setenv("MAX_RECORDS", "lots")
    assert main(["monitor"]) == Exit.CONFIG == 3
    assert "MAX_RECORDS" in capsys.readouterr().err


def test_a_refused_rollback_is_a_refusal(monkeypatch: pytest.MonkeyPatch) -> None:
    class NothingBefore:
        name = "SVC"

        def rollback(self, dry_run: bool) -> tuple[str, str]:
            raise GateError("SVC v1 did not become @champion through `streamfn promote`")

    monkeypatch.setattr(champion, "open_gate", lambda settings, model: NothingBefore())
    assert main(["rollback", "--model", "svm"]) == Exit.REFUSED == 4


def test_a_service_that_does_not_answer_is_an_outage(
    closed_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    monkeypatch.setenv("INGEST_URL", closed_url)
    assert main(["monitor"]) == Exit.OUTAGE == 5
    assert f"INGEST_URL={closed_url} does not answer" in capsys.readouterr().err
    assert main(["train", "--tracking-uri", closed_url]) == Exit.OUTAGE
    assert f"MLflow is not reachable at MLFLOW_TRACKING_URI={closed_url}" in (
        capsys.readouterr().err
    )


def test_the_codes_are_distinct() -> None:
    assert len({int(code) for code in Exit}) == len(Exit)
    assert isinstance(Exit.OUTAGE, int)  # sys.exit takes it as the process's code
