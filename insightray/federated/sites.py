"""Non-IID sites from one labelled fracture folder, split by source group, never by image.

:func:`assign_sites` first holds out a test share of source groups (stratified like
:func:`~insightray.training.fracture.dataset.split_by_group`), then deals the remaining groups
to ``n`` sites. Groups are classed as negative (no fractured image) or positive; each class is
shared out by Dirichlet proportions around the site sizes (the usual way to simulate label
skew, Hsu et al. 2019):

- ``size_skew`` S >= 0: site k's expected share is proportional to ``(1 + S) ** -k``
  (0: equal sizes; 1: 4/7, 2/7, 1/7 of the groups for three sites).
- ``label_skew`` L >= 0: each class's shares are drawn from ``Dirichlet(sizes * n / L)``; 0
  gives exactly the size shares (no label skew), larger values give sites ever more different
  fracture rates.

Every group lands at exactly one site (or the test set), so no image, and no augmented copy of
an image, is shared. :func:`write_sites` copies each site's images into its own folder with an
``images.csv`` readable by :func:`~insightray.training.fracture.dataset.load_fracture_items`.

Example:
    >>> from pathlib import Path
    >>> from insightray.training.fracture.dataset import FractureItem
    >>> items = [FractureItem(Path(f"{g}_{k}.png"), g % 2, str(g)) for g in range(40)
    ...          for k in range(2)]
    >>> plan = assign_sites(items, 3, label_skew=0.5, size_skew=0.5, seed=0)
    >>> sorted({g for site in plan.sites for g in site} & {g for g in plan.test})
    []
"""

from __future__ import annotations

import csv
import json
import shutil
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from insightray.errors import ConfigError
from insightray.training.fracture.dataset import FractureItem, class_counts, split_by_group

__all__ = ["SitePlan", "assign_sites", "deal_classes", "site_folders", "write_sites"]

TEST_FOLDER = "test"
SUMMARY_FILE = "sites.json"


@dataclass(frozen=True)
class SitePlan:
    """Source groups per site and for the held-out test set.

    Attributes:
        sites: One dict per site, group name -> its images.
        test: Held-out test groups -> images.
    """

    sites: list[dict[str, list[FractureItem]]]
    test: dict[str, list[FractureItem]]

    def summary(self) -> dict[str, Any]:
        """Images, groups and fractured images per site (the ``sites.json`` content)."""

        def describe(groups: dict[str, list[FractureItem]]) -> dict[str, int]:
            items = [item for members in groups.values() for item in members]
            _, positives = class_counts(items)
            return {"groups": len(groups), "images": len(items), "fractured": positives}

        return {
            "sites": [describe(site) for site in self.sites],
            "test": describe(self.test),
        }


def _by_group(items: Sequence[FractureItem]) -> dict[str, list[FractureItem]]:
    members: dict[str, list[FractureItem]] = defaultdict(list)
    for item in items:
        members[item.group].append(item)
    return dict(members)


def assign_sites(
    items: Sequence[FractureItem],
    n_sites: int,
    *,
    label_skew: float = 0.5,
    size_skew: float = 0.5,
    test_fraction: float = 0.2,
    seed: int = 0,
) -> SitePlan:
    """Deal source groups to ``n_sites`` non-IID sites (see the module docstring).

    Raises:
        ConfigError: Fewer than 2 sites, negative skews, or fewer groups than sites.
    """
    if n_sites < 2:
        raise ConfigError("sites", f"{n_sites}", "use at least 2 sites")
    if label_skew < 0 or size_skew < 0:
        raise ConfigError("skew", "is negative", "use label and size skews >= 0")
    holdout = split_by_group(items, val_fraction=0.0, test_fraction=test_fraction, seed=seed)
    groups = _by_group(holdout.train)
    if len(groups) < 2 * n_sites:
        raise ConfigError("sites", f"{len(groups)} groups for {n_sites} sites", "use fewer sites")
    classes = [
        [g for g, m in groups.items() if any(i.label for i in m) == positive]
        for positive in (False, True)
    ]
    dealt = deal_classes(classes, n_sites, label_skew=label_skew, size_skew=size_skew, seed=seed)
    sites = [{name: groups[name] for name in names} for names in dealt]
    return SitePlan(sites, _by_group(holdout.test))


def deal_classes(
    classes: Sequence[Sequence[str]],
    n_sites: int,
    *,
    label_skew: float,
    size_skew: float,
    seed: int,
) -> list[list[str]]:
    """Deal each class's names to ``n_sites`` sites by Dirichlet shares (module docstring).

    ``classes`` holds one list of names (source groups, images) per class; every name goes to
    exactly one site.

    Raises:
        ConfigError: A site got nothing.
    """
    rng = np.random.default_rng(seed)
    sizes = (1.0 + size_skew) ** -np.arange(n_sites, dtype=np.float64)
    sizes /= sizes.sum()
    sites: list[list[str]] = [[] for _ in range(n_sites)]
    for members in classes:
        names = sorted(members)
        rng.shuffle(names)
        shares = sizes if label_skew == 0 else rng.dirichlet(sizes * n_sites / label_skew)
        bounds = np.round(np.cumsum(shares) * len(names)).astype(int)
        start = 0
        for index, stop in enumerate(bounds):
            sites[index] += names[start:stop]
            start = stop
    for index, site in enumerate(sites):
        if not site:
            raise ConfigError(
                "split", f"site {index} got nothing", "lower --label-skew or --size-skew"
            )
    return sites


def site_folders(root: str | Path) -> list[Path]:
    """The site folders ``site_0, site_1, ...`` under a :func:`write_sites` output."""
    found = sorted(Path(root).glob("site_*"), key=lambda p: int(p.name.split("_")[1]))
    return [p for p in found if p.is_dir()]


def write_sites(plan: SitePlan, out: str | Path) -> dict[str, Any]:
    """Copy each site's (and the test set's) images into its own folder with ``images.csv``.

    Returns:
        The summary written to ``out/sites.json``.

    Raises:
        ConfigError: ``out`` already holds a split.
    """
    root = Path(out)
    if (root / SUMMARY_FILE).exists():
        raise ConfigError(str(root), "already holds a site split", "choose an empty --out")
    named = [(f"site_{k}", site) for k, site in enumerate(plan.sites)]
    for name, groups in [*named, (TEST_FOLDER, plan.test)]:
        folder = root / name
        (folder / "images").mkdir(parents=True, exist_ok=True)
        with (folder / "images.csv").open("w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow(["image", "group", "fractured"])
            for group in sorted(groups):
                for item in groups[group]:
                    target = folder / "images" / item.path.name
                    shutil.copyfile(item.path, target)
                    writer.writerow([f"images/{item.path.name}", group, item.label])
    summary = plan.summary()
    (root / SUMMARY_FILE).write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    return summary
