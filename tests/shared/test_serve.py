"""The server command: the app named on its command line, else in CHRONOTICK_APP (the family images)."""

from __future__ import annotations

import pytest

from chronotick import serve


def test_the_app_comes_from_the_command_line_before_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    served: list[tuple[object, str, int]] = []
    monkeypatch.setattr(serve, "serve", lambda app, *, host, port: served.append((app, host, port)))
    monkeypatch.setenv(serve.APP_VARIABLE, "chronotick_ttm.main:app")
    serve.main(["--host", "0.0.0.0"])
    serve.main(["chronotick_gateway.main:app", "--port", "9000"])
    assert served == [
        ("chronotick_ttm.main:app", "0.0.0.0", serve.DEFAULT_PORT),
        ("chronotick_gateway.main:app", "127.0.0.1", 9000),
    ]


def test_without_an_app_the_command_says_how_to_name_one(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv(serve.APP_VARIABLE, raising=False)
    with pytest.raises(SystemExit) as exit_:
        serve.main([])
    assert exit_.value.code == 2 and serve.APP_VARIABLE in capsys.readouterr().err
