"""The ``chronotick`` command: one entry point for forecasting, fleet status, benchmarks, training
and the clock agent. Commands are thin: the work is in the client, the bench, the families'
training modules and the agent."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.table import Table
from rich.text import Text

from chronotick.cli.clock import clock_table, memory_line, report_header
from chronotick.cli.family import FamilyUnavailable, run_family_module
from chronotick.cli.forecast import NotForecastable, forecast_plot, forecast_table, members_table, prepare_request
from chronotick.client import DEFAULT_GATEWAY_URL, Client, ClientError, GatewayError
from chronotick.clockdata import FORMAT_NAMES, UnsupportedFormat, read_clock_log
from chronotick.contract import MAX_DEADLINE_S, MIN_DEADLINE_S
from chronotick.families import families
from chronotick.textplot import DEFAULT_WIDTH

app = typer.Typer(
    name="chronotick",
    help="Clock-offset forecasts from the ChronoTick fleet (offset_us = local - reference, + = fast).",
    no_args_is_help=True,
    add_completion=False,
    # Markdown: docstrings wrap as paragraphs; an example stays on its own line.
    rich_markup_mode="markdown",
)
out = Console()
err = Console(stderr=True)

Gateway = Annotated[str, typer.Option(envvar="CHRONOTICK_GATEWAY_URL", help="Gateway base URL.")]
ApiKey = Annotated[str | None, typer.Option(envvar="CHRONOTICK_API_KEY", help="X-API-Key for the gateway.")]
TimeoutS = Annotated[float, typer.Option(min=0.1, help="Seconds to wait for each HTTP answer.")]
# Options and arguments that are not ours go through untouched to the command we delegate to.
PASS_THROUGH = {"allow_extra_args": True, "ignore_unknown_options": True}


def _fail(message: str, code: int = 1) -> typer.Exit:
    err.print(f"[red]error:[/red] {message}", highlight=False)
    return typer.Exit(code)


@app.command()
def predict(
    log: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="Clock log or CSV.")],
    horizon_s: Annotated[float, typer.Option(min=0.001, help="Forecast this many seconds past the log's end.")] = 60.0,
    context: Annotated[int, typer.Option(min=8, max=8192, help="Samples of history sent (the newest).")] = 512,
    log_format: Annotated[
        str | None, typer.Option("--format", help=f"One of {', '.join(FORMAT_NAMES)}; detected when omitted.")
    ] = None,
    backend: Annotated[list[str] | None, typer.Option(help="Fuse only this member or service (repeatable).")] = None,
    deadline_s: Annotated[
        float, typer.Option(min=MIN_DEADLINE_S, max=MAX_DEADLINE_S, help="Deadline sent to the gateway.")
    ] = 5.0,
    as_json: Annotated[bool, typer.Option("--json", help="Print the gateway's whole answer as JSON.")] = False,
    plot: Annotated[
        bool,
        typer.Option(
            "--plot", help="Also draw the recent history, the forecast and its 80 % and 95 % bands as a text chart."
        ),
    ] = False,
    clean: Annotated[bool, typer.Option(help="Let the gateway set spikes aside as missing samples.")] = True,
    clock_id: Annotated[
        str | None,
        typer.Option(
            help="Name the clock, so that the gateway remembers it: it scores "
            "the clock's earlier forecasts on this log's newer samples and "
            "learns its weights and bounds (see status --clock)."
        ),
    ] = None,
    gateway: Gateway = DEFAULT_GATEWAY_URL,
    api_key: ApiKey = None,
    timeout_s: TimeoutS = 40.0,
) -> None:
    """Forecast a clock from its log (chrony, ntpd, ptp4l, Meinberg or CSV) through the gateway.

    The log's last continuous stretch (after its last clock step or gap) is sent; the answer is a
    table of the fused forecast per step with 80 % and 95 % intervals, and the members that took part;
    with --plot, a text chart of it too (for a terminal over ssh). With --clock-id the request names
    the clock and the times of its samples, and the gateway's memory of it is shown.

    Example: chronotick predict /var/log/chrony/tracking.log --horizon-s 30 --plot
    """
    try:
        series = read_clock_log(log, format=log_format)
        prepared = prepare_request(
            series,
            horizon_s=horizon_s,
            context=context,
            deadline_s=deadline_s,
            backends=backend,
            clean=clean,
            clock_id=clock_id,
        )
    except (UnsupportedFormat, NotForecastable, ValueError) as error:
        raise _fail(str(error), 2) from error
    try:
        with Client(gateway, api_key=api_key, timeout_s=timeout_s) as client:
            answer = client.predict(prepared.request)
    except ClientError as error:
        raise _fail(str(error)) from error
    if as_json:
        out.print_json(answer.model_dump_json())
        return
    out.print(
        f"{series.source} ({series.format}): {prepared.used_samples} samples at {prepared.interval_s:g} s, "
        f"last offset {prepared.last_offset_us:.3f} us",
        highlight=False,
    )
    if answer.flagged_outliers and answer.flagged_outliers[0]:
        out.print(
            f"cleaning set {len(answer.flagged_outliers[0])} spike(s) aside as missing samples "
            f"(indices into the {prepared.used_samples} sent): {answer.flagged_outliers[0]}",
            highlight=False,
        )
    out.print(forecast_table(answer))
    out.print(members_table(answer))
    if answer.memory and answer.memory[0].clock_id is not None:
        out.print(memory_line(answer.memory[0]), highlight=False)
    if plot:
        out.print(
            Text.from_ansi(forecast_plot(prepared, answer, width=min(DEFAULT_WIDTH, out.width), color=out.is_terminal))
        )


@app.command()
def status(
    clock: Annotated[
        str | None, typer.Option(help="Show what the gateway remembers of this clock instead of the fleet.")
    ] = None,
    gateway: Gateway = DEFAULT_GATEWAY_URL,
    api_key: ApiKey = None,
    timeout_s: TimeoutS = 5.0,
) -> None:
    """Show the fleet: the gateway's readiness, each service with its models, versions and breaker,
    and the version of the gateway's configuration in force (after a hot reload, the new one's).

    With --clock ID, the gateway's memory of that clock instead: per scored horizon, how many
    forecasts were scored, the combination rule, the heaviest weights, the realised MAE of the fused
    forecast and of the members, the coverage of the 80 % and 95 % intervals and the error scale.

    Exits with 1 when the gateway does not answer, or does not know the clock.

    Example: chronotick status --gateway http://127.0.0.1:8000 --clock host-a
    """
    if clock is not None:
        _clock_status(clock, gateway, api_key, timeout_s)
        return
    try:
        with Client(gateway, api_key=api_key, timeout_s=timeout_s, attempts=1) as client:
            ready = client.ready()
            fleet = client.models()
    except ClientError as error:
        raise _fail(str(error)) from error
    out.print(f"gateway {gateway}: {ready.get('status')}", highlight=False)
    table = Table(title="Services")
    for header in ("service", "url", "ready", "breaker", "models (version)", "last error"):
        table.add_column(header)
    for service in fleet.services:
        models = ", ".join(f"{m.name} ({m.model_version[:12]})" for m in service.info.models) if service.info else "-"
        table.add_row(
            service.name,
            service.url,
            "yes" if service.ready else "no",
            service.breaker,
            models,
            service.last_error or "",
        )
    if not fleet.services:
        table.caption = "no model service configured: the classical members answer alone"
    out.print(table)
    out.print(f"classical members (always answer): {', '.join(fleet.classical)}", highlight=False)
    if fleet.per_clock:
        out.print(f"learned per clock (warm clocks): {', '.join(fleet.per_clock)}", highlight=False)
    out.print(f"configuration in force: {fleet.config_version or 'not reported'}", highlight=False)


def _clock_status(clock_id: str, gateway: str, api_key: str | None, timeout_s: float) -> None:
    try:
        with Client(gateway, api_key=api_key, timeout_s=timeout_s, attempts=1) as client:
            report = client.clock(clock_id)
    except ValidationError as error:  # an id the contract refuses: never sent
        raise _fail(f"--clock {clock_id!r} is not a clock id: {error.errors()[0]['msg']}", 2) from error
    except GatewayError as error:
        if error.status == 404:
            raise _fail(
                f"gateway {gateway} remembers no clock {clock_id!r} (never named in a request, forgotten, "
                "or expired after its idle time)"
            ) from error
        raise _fail(str(error)) from error
    except ClientError as error:
        raise _fail(str(error)) from error
    out.print(report_header(report), highlight=False)
    out.print(clock_table(report))


@app.command(context_settings=PASS_THROUGH)
def bench(context: typer.Context) -> None:
    """Run the accuracy benchmark (`python -m chronotick.bench`); every argument goes to it.

    Its own options: chronotick bench -- --help

    Example: chronotick bench ../shared/data/scion --gateway http://127.0.0.1:8000 --no-plots --report
    """
    from chronotick.bench.__main__ import main as bench_main

    raise typer.Exit(bench_main(list(context.args)))


Family = Annotated[str, typer.Argument(help=f"Model family: {', '.join(families())}.")]


def _run_family(family: str, module: str, arguments: list[str]) -> None:
    try:
        code = run_family_module(family, module, arguments)
    except FamilyUnavailable as error:
        raise _fail(str(error), 2) from error
    raise typer.Exit(code)


@app.command(context_settings=PASS_THROUGH)
def train(context: typer.Context, family: Family) -> None:
    """Train a family's micro-checkpoints with `python -m chronotick_FAMILY.train` in its own environment.

    Every argument after FAMILY goes to the training module (its options: chronotick train FAMILY -- --help).

    Example: chronotick train chronos --model all
    """
    _run_family(family, "train", list(context.args))


@app.command(context_settings=PASS_THROUGH)
def finetune(context: typer.Context, family: Family) -> None:
    """Fine-tune a family's model on a clock's own log (`python -m chronotick_FAMILY.finetune`).

    Every argument after FAMILY goes to the fine-tuning module, in the family's own environment.

    Example: chronotick finetune chronos --model chronos-bolt --log tracking.log --train-fraction 0.5 --out ft/
    """
    _run_family(family, "finetune", list(context.args))


# The agent's settings its command-line options set, as the user types them (for error messages).
_AGENT_OPTIONS = {
    "source": "--source",
    "ntp_server": "--ntp-server",
    "ntp_port": "--ntp-port",
    "gateway_url": "--gateway",
    "clock_id": "--clock-id",
    "host": "--host",
    "port": "--port",
}


@app.command()
def agent(
    source: Annotated[str | None, typer.Option(help="ntp or chrony (env CHRONOTICK_AGENT_SOURCE).")] = None,
    ntp_server: Annotated[str | None, typer.Option(help="NTP server (env CHRONOTICK_AGENT_NTP_SERVER).")] = None,
    ntp_port: Annotated[int | None, typer.Option(help="NTP port (env CHRONOTICK_AGENT_NTP_PORT).")] = None,
    gateway: Annotated[str | None, typer.Option(help="Gateway URL (env CHRONOTICK_AGENT_GATEWAY_URL).")] = None,
    clock_id: Annotated[
        str | None,
        typer.Option(
            help="The clock's name at the gateway, which remembers it (env "
            "CHRONOTICK_AGENT_CLOCK_ID; default: the host name)."
        ),
    ] = None,
    host: Annotated[str | None, typer.Option(help="Listen address (env CHRONOTICK_AGENT_HOST).")] = None,
    port: Annotated[int | None, typer.Option(help="Listen port (env CHRONOTICK_AGENT_PORT).")] = None,
) -> None:
    """Run the clock agent: measure this host's offset, forecast it with the fleet, serve corrected time.

    It serves GET /time (offset now and its error bound), /status and /metrics. Every setting is an
    environment variable CHRONOTICK_AGENT_*; the options here override them. A wrong setting stops it
    at start, naming the setting.

    Example: chronotick agent --source ntp --ntp-server 127.0.0.1 --gateway http://127.0.0.1:8000 --port 8100
    """
    import logging

    from chronotick.agent import SettingsInvalid, load_settings, run_agent

    try:
        settings = load_settings(
            _AGENT_OPTIONS,
            source=source,
            ntp_server=ntp_server,
            ntp_port=ntp_port,
            gateway_url=gateway,
            clock_id=clock_id,
            host=host,
            port=port,
        )
    except SettingsInvalid as error:
        raise _fail(str(error), 2) from error
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per forecast request is noise
    logging.getLogger("chronotick.agent").info(
        "agent on http://%s:%d: source %s every %g s, gateway %s as clock %s, max drift %g ppm",
        settings.host,
        settings.port,
        settings.source,
        settings.measure_interval_s,
        settings.gateway_url,
        settings.clock_id,
        settings.max_drift_ppm,
    )
    run_agent(settings)


def main() -> None:
    app()
