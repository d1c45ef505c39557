"""Federated verbs: ``federated split``, ``simulate``, ``server`` and ``client``.

All run on Flower's deployment engine (``insightray[federated]``); Flower is imported inside
the commands.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated, Any

import typer

from insightray.cli.common import app, err, out

federated_app = typer.Typer(
    help="Federated training across sites on Flower (FedAvg/FedProx, SecAgg+, DP).",
    no_args_is_help=True,
)
app.add_typer(federated_app, name="federated")

Sites = Annotated[int, typer.Option("--sites", min=2, help="Number of sites.")]
LabelSkew = Annotated[
    float, typer.Option("--label-skew", min=0.0, help="0: same fracture rate at every site.")
]
FedBN = Annotated[
    bool,
    typer.Option(
        "--fedbn",
        help="Keep batch norm local at each site between rounds (FedBN) instead of averaging it.",
    ),
]
SizeSkew = Annotated[float, typer.Option("--size-skew", min=0.0, help="0: equal site sizes.")]
Task = Annotated[
    str,
    typer.Option(
        "--task",
        help="fracture (image folder), ner (CoNLL folder: train/devel/test.tsv) or detect "
        "(YOLO data.yaml: train split to the sites, val held out).",
    ),
]
Detector = Annotated[
    str, typer.Option("--detector", help="detect only: registered YOLOv5 detector.")
]


def _flower() -> None:
    from insightray.extras import import_extra

    import_extra("flwr", "federated")


@federated_app.command("split")
def split(
    data: Annotated[
        Path,
        typer.Option(
            "--data", help="Labelled folder (images.csv + group), CoNLL folder or data.yaml."
        ),
    ],
    out_dir: Annotated[Path, typer.Option("--out", help="Empty folder for the sites.")],
    task: Task = "fracture",
    sites: Sites = 3,
    label_skew: LabelSkew = 0.5,
    size_skew: SizeSkew = 0.5,
    test_fraction: Annotated[
        float, typer.Option("--test-fraction", min=0.0, max=0.9, help="Groups held out.")
    ] = 0.2,
    seed: Annotated[int, typer.Option("--seed", min=0)] = 0,
) -> None:
    """Make non-IID sites (fracture: by source group; ner: blocks of train.tsv sentences;
    detect: train images by their main box class).

    Fracture: copies of one image never reach two sites. NER: the coordinator keeps devel.tsv.
    Detect: the data.yaml's val split is held out as test/ (--test-fraction is not used).
    """
    from insightray.federated.sites import assign_sites, write_sites
    from insightray.training.fracture.dataset import load_fracture_items

    if task != "fracture":
        from insightray.federated.tasks import get_task

        get_task(task).split(
            data, sites, out_dir, label_skew=label_skew, size_skew=size_skew, seed=seed
        )
        summary_task = json.loads((out_dir / "sites.json").read_text(encoding="utf-8"))
        for index, site in enumerate(summary_task["sites"]):
            out.print(f"site_{index}: {_describe_site(site)}", highlight=False)
        if "test" in summary_task:
            out.print(f"test: {_describe_site(summary_task['test'])}", highlight=False)
        return

    plan = assign_sites(
        load_fracture_items(data),
        sites,
        label_skew=label_skew,
        size_skew=size_skew,
        test_fraction=test_fraction,
        seed=seed,
    )
    summary = write_sites(plan, out_dir)
    for index, site in enumerate(summary["sites"]):
        out.print(
            f"site_{index}: {site['images']} images, {site['groups']} groups, "
            f"{site['fractured']} fractured",
            highlight=False,
        )
    test = summary["test"]
    out.print(f"test: {test['images']} images, {test['groups']} groups", highlight=False)


def _describe_site(site: dict[str, Any]) -> str:
    """One line for a site of ``sites.json`` (NER or detect)."""
    if "sentences" in site:
        return f"{site['sentences']} sentences, {site['mentions']} mentions"
    classes = ", ".join(f"{name} {count}" for name, count in site["images_with"].items())
    return f"{site['images']} images, {site['boxes']} boxes (images with: {classes})"


def _settings(**values: Any) -> Any:
    from insightray.federated.settings import FederatedSettings

    return FederatedSettings(**{k: v for k, v in values.items() if v is not None})


@federated_app.command("simulate")
def simulate(
    data: Annotated[Path, typer.Option("--data", help="Labelled folder, or a split's folder.")],
    out_dir: Annotated[Path, typer.Option("--out", help="Run folder.")],
    task: Task = "fracture",
    sites: Sites = 3,
    rounds: Annotated[int, typer.Option("--rounds", min=1)] = 3,
    strategy: Annotated[str, typer.Option("--strategy", help="fedavg or fedprox.")] = "fedavg",
    mu: Annotated[float, typer.Option("--mu", min=0.0, help="FedProx coefficient.")] = 0.01,
    local_epochs: Annotated[int, typer.Option("--local-epochs", min=1)] = 1,
    fraction: Annotated[
        float, typer.Option("--fraction", min=0.01, max=1.0, help="Sites sampled per round.")
    ] = 1.0,
    min_sites: Annotated[
        int, typer.Option("--min-sites", min=1, help="Fewer replies: round skipped.")
    ] = 2,
    img: Annotated[int, typer.Option("--img", min=32, help="Input side.")] = 64,
    detector: Detector = "yolov5n",
    dp_noise: Annotated[float, typer.Option("--dp-noise", min=0.0, help="Noise multiplier.")] = 0.0,
    dp_clip: Annotated[float, typer.Option("--dp-clip", min=0.0, help="Update L2 clip.")] = 0.0,
    secagg: Annotated[bool, typer.Option("--secagg", help="SecAgg+ aggregation.")] = False,
    fedbn: FedBN = False,
    label_skew: LabelSkew = 0.5,
    size_skew: SizeSkew = 0.5,
    seed: Annotated[int, typer.Option("--seed", min=0)] = 0,
) -> None:
    """Run a federation on this machine (SuperLink + one SuperNode per site, on loopback).

    Writes OUT/model (for `evaluate fracture --model OUT/model`, `evaluate ner` or
    `evaluate detect`), OUT/metrics.json (per round: replies, skipped, loss, server-side AUC,
    entity F1 or mAP@0.5, epsilon) and OUT/rounds.png. --img applies to fracture and detect
    (a multiple of 32 for detect). Detect trains from random weights and has no DP.
    """
    _flower()
    from insightray.federated.simulation import simulate as run
    from insightray.federated.tasks import get_task

    chosen = get_task(task)
    metric = chosen.metric
    settings = _settings(
        task=task,
        rounds=rounds,
        strategy=strategy,
        mu=mu,
        local_epochs=local_epochs,
        fraction=fraction,
        min_sites=min_sites,
        image_size=img,
        detector=detector,
        dp_noise=dp_noise,
        dp_clip=dp_clip,
        secagg=secagg,
        local_bn=fedbn,
        seed=seed,
    )
    result = run(
        data,
        settings,
        sites=sites,
        out=out_dir,
        label_skew=label_skew,
        size_skew=size_skew,
        log=lambda line: err.print(line, highlight=False),
    )
    for record in result.rounds["rounds"]:
        status = "skipped" if record["skipped"] else f"{record['replies']} sites"
        score = record.get(f"eval_{metric}")
        eps = record.get("epsilon")
        out.print(
            f"round {record['round']}: {status}"
            + ("" if score is None else f", server {chosen.metric_name} {score:.4f}")
            + ("" if eps is None else f", epsilon {eps:.2f}"),
            highlight=False,
        )
    if result.test is not None:
        out.print(get_task(task).describe(result.test), highlight=False)
    out.print(f"{result.seconds:.0f} s -> {result.card_path}", highlight=False)


@federated_app.command("server")
def server(
    out_dir: Annotated[Path, typer.Option("--out", help="Where the global model goes.")],
    task: Task = "fracture",
    eval_data: Annotated[
        Path | None,
        typer.Option(
            "--eval-data",
            help="The coordinator's own labelled data, scored each round (NER: its devel.tsv, "
            "also the vocabulary; detect: a data.yaml naming the classes, val scored; "
            "required for both).",
        ),
    ] = None,
    sites: Sites = 3,
    rounds: Annotated[int, typer.Option("--rounds", min=1)] = 3,
    strategy: Annotated[str, typer.Option("--strategy", help="fedavg or fedprox.")] = "fedavg",
    mu: Annotated[float, typer.Option("--mu", min=0.0)] = 0.01,
    min_sites: Annotated[int, typer.Option("--min-sites", min=1)] = 2,
    img: Annotated[int, typer.Option("--img", min=32)] = 64,
    detector: Detector = "yolov5n",
    dp_noise: Annotated[float, typer.Option("--dp-noise", min=0.0)] = 0.0,
    dp_clip: Annotated[float, typer.Option("--dp-clip", min=0.0)] = 0.0,
    secagg: Annotated[bool, typer.Option("--secagg")] = False,
    fedbn: FedBN = False,
    host: Annotated[str, typer.Option("--host", help="Address to listen on.")] = "0.0.0.0",
    port: Annotated[int, typer.Option("--port", min=1, max=65535)] = 9091,
    ca: Annotated[Path | None, typer.Option("--ca", help="CA certificate (PEM).")] = None,
    cert: Annotated[Path | None, typer.Option("--cert", help="Server certificate.")] = None,
    key: Annotated[Path | None, typer.Option("--key", help="Server private key.")] = None,
    site_keys: Annotated[
        Path | None,
        typer.Option(
            "--site-keys",
            help="Authorised sites' public keys: a .pub file or a folder of them (needs TLS).",
        ),
    ] = None,
    insecure: Annotated[bool, typer.Option("--insecure", help="No TLS (tests only).")] = False,
    wait: Annotated[
        float, typer.Option("--wait", min=0.0, help="Seconds to let sites connect.")
    ] = 30.0,
) -> None:
    """Coordinate a federation: start a SuperLink, wait for the sites, run, write the model.

    With --site-keys only the sites whose public key is listed can join (Flower's SuperNode
    authentication); any other SuperNode is refused when it connects.
    """
    from insightray.errors import ConfigError

    _flower()
    from insightray.federated.deployment import SuperLink, Tls, site_key_files, submit_run
    from insightray.federated.results import read_rounds, write_federated_model
    from insightray.federated.tasks import get_task

    if not insecure and (ca is None or cert is None or key is None):
        raise ConfigError("server", "TLS needs --ca, --cert and --key", "or pass --insecure")
    if eval_data is None and get_task(task).needs_eval_data:
        raise ConfigError(f"--task {task}", "needs the coordinator's data", "pass --eval-data")
    tls = None if insecure else Tls(ca, cert, key)  # type: ignore[arg-type]
    settings = _settings(
        task=task,
        eval_data=str(eval_data.resolve()) if eval_data is not None else None,
        rounds=rounds,
        strategy=strategy,
        mu=mu,
        min_sites=min_sites,
        image_size=img,
        detector=detector,
        dp_noise=dp_noise,
        dp_clip=dp_clip,
        secagg=secagg,
        local_bn=fedbn,
        out=str((out_dir / "server").resolve()),
    )
    keys = site_key_files(site_keys) if site_keys is not None else []
    home = out_dir / "flower"
    link = SuperLink(home, host=host, port=port, tls=tls, site_keys=keys)
    authorised = f"{len(keys)} authorised site key(s)" if keys else "any site (no --site-keys)"
    err.print(f"SuperLink on {host}:{port} (pid {link.pid}), {authorised}; waiting {wait:.0f} s")
    try:
        time.sleep(wait)
        submit_run(home, link.local_address, {**settings.to_run_config(), "sites": sites}, tls=tls)
    finally:
        link.stop()
    rounds_record = read_rounds(Path(settings.out))
    card = write_federated_model(out_dir / "model", settings, rounds_record, f"{sites} sites")
    out.print(json.dumps({"model": str(out_dir / "model"), "card": card.lineage.settings}))


@federated_app.command("keys")
def keys(
    out_dir: Annotated[Path, typer.Option("--out", help="Folder for the key pair.")],
    name: Annotated[str, typer.Option("--name", help="The site's name (file names).")] = "site",
) -> None:
    """Make a site's key pair: the site keeps NAME, the coordinator gets NAME.pub."""
    from insightray.federated.certificates import make_site_keys

    paths = make_site_keys(out_dir, name)
    out.print(f"private (keep at the site): {paths['private']}", highlight=False)
    out.print(f"public (send to the coordinator): {paths['public']}", highlight=False)


@federated_app.command("client")
def client(
    data: Annotated[
        Path,
        typer.Option(
            "--data",
            help="This site's data: image folder, train.tsv folder (NER) or data.yaml folder "
            "(detect).",
        ),
    ],
    server_address: Annotated[str, typer.Option("--server", help="SuperLink HOST:PORT.")],
    ca: Annotated[Path | None, typer.Option("--ca", help="CA certificate (PEM).")] = None,
    key: Annotated[
        Path | None,
        typer.Option("--key", help="This site's private key (federated keys), for --site-keys."),
    ] = None,
    insecure: Annotated[bool, typer.Option("--insecure", help="No TLS (tests only).")] = False,
    cache: Annotated[Path | None, typer.Option("--cache", help="Prepared-image cache.")] = None,
    port: Annotated[int, typer.Option("--port", help="Local ClientApp API port.")] = 9094,
    audit: Annotated[
        Path | None, typer.Option("--audit", help="Keep a copy of every update sent here.")
    ] = None,
) -> None:
    """Join a federation as one site: start a SuperNode; the data never leaves this machine."""
    from insightray.errors import ConfigError

    _flower()
    from insightray.federated.deployment import SuperNode, Tls

    if not insecure and ca is None:
        raise ConfigError("client", "TLS needs --ca", "or pass --insecure")
    node_config: dict[str, str | int] = {"data": str(data.resolve())}
    if cache is not None:
        node_config["cache"] = str(cache.resolve())
    if audit is not None:
        node_config["audit"] = str(audit.resolve())
    home = Path(cache or data.resolve().parent) / ".flower"
    tls = None if insecure else Tls(ca)  # type: ignore[arg-type]
    node = SuperNode(
        home, server_address, node_config, port=port, tls=tls, key=key and key.resolve()
    )
    err.print(f"SuperNode pid {node.pid} connected to {server_address}; Ctrl-C to leave")
    try:
        node.process.wait()
    finally:
        node.stop()
