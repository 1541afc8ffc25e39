"""report.html: drawn plots in headless Chromium, every section present, untrusted text escaped."""

from __future__ import annotations

import json
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from refinelab.api.report_html import ReportError, build_report

CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--hide-scrollbars",
                  "--force-device-scale-factor=1", "--window-size=1280,9000"]
FIGURES = ("fig-coverage", "fig-difficulty", "fig-budget", "fig-operations")
EVIL = '<script>alert("x")</script><img src=x onerror=alert(1)>'

# Appended to a copy of the page (with its CSP removed) so Chromium reports the laid-out size of each plot.
MEASURE = """<script>
const out = {};
for (const fig of document.querySelectorAll("figure")) {
  const svg = fig.querySelector("svg.plot");
  if (!svg) { out[fig.id] = null; continue; }
  const r = svg.getBoundingClientRect();
  out[fig.id] = {x: r.x + window.scrollX, y: r.y + window.scrollY, w: r.width, h: r.height,
                 shapes: svg.querySelectorAll("path, use, rect, image").length,
                 images: [...svg.querySelectorAll("image")].map(i => i.getBBox().width)};
}
document.title = "MEASURE" + JSON.stringify(out);
</script>"""


def _chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    pytest.skip("headless Chromium not installed (Debian: apt-get install chromium; .ci/run installs it)")


def _browse(page: Path, tmp_path: Path, *mode: str) -> subprocess.CompletedProcess[str]:
    profile = tmp_path / f"chromium-profile-{len(list(tmp_path.iterdir()))}"
    return subprocess.run([_chromium(), *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *mode, page.as_uri()],
                          capture_output=True, text=True, timeout=90, cwd=tmp_path)


class _Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))


def _tags(html: str) -> list[tuple[str, dict[str, str | None]]]:
    parser = _Tags()
    parser.feed(html)
    return parser.tags


@pytest.fixture(scope="module")
def report(run_dir: Path) -> Path:
    return build_report(run_dir)


def test_plots_are_drawn_in_headless_chromium(report: Path, tmp_path: Path) -> None:
    from PIL import Image

    html = report.read_text()
    assert "http://" not in html.replace("http://www.w3.org/", "") and "https://" not in html  # nothing fetched
    probe = tmp_path / "probe.html"
    probe.write_text(html.replace('<meta http-equiv="Content-Security-Policy"', '<meta name="csp-removed"')
                     .replace("</body>", MEASURE + "</body>"))
    dom = _browse(probe, tmp_path, "--dump-dom")
    assert dom.returncode == 0, dom.stderr[-2000:]
    start = dom.stdout.index("MEASURE") + len("MEASURE")
    measured = json.JSONDecoder().raw_decode(dom.stdout[start:].replace("&quot;", '"'))[0]
    for fig in FIGURES:
        box = measured[fig]
        assert box is not None, f"{fig}: no plot"
        assert box["w"] > 300 and box["h"] > 150, f"{fig}: laid out at {box['w']}x{box['h']}"
        assert box["shapes"] > 20, f"{fig}: only {box['shapes']} drawn shapes"
    assert sum(w > 50 for w in measured["fig-coverage"]["images"]) >= 2  # the before and after heatmaps

    # The real page (CSP on, no script): the pixels where each plot sits are not blank.
    shot = tmp_path / "shot.png"
    result = _browse(report, tmp_path, f"--screenshot={shot}")
    assert result.returncode == 0 and shot.exists(), result.stderr[-2000:]
    image = Image.open(shot).convert("RGB")
    for fig in FIGURES:
        box = measured[fig]
        if box["y"] + box["h"] > image.height:
            continue
        crop = image.crop((int(box["x"]), int(box["y"]), int(box["x"] + box["w"]), int(box["y"] + box["h"])))
        pixels = np.asarray(crop).reshape(-1, 3)
        inked = float((pixels.min(axis=1) < 200).mean())
        colours = len(np.unique(pixels, axis=0))
        assert inked > 0.03 and colours > 20, f"{fig}: looks blank ({inked:.1%} inked, {colours} colours)"
    top = image.crop((0, int(measured["fig-coverage"]["y"]), image.width,
                      int(measured["fig-coverage"]["y"] + measured["fig-coverage"]["h"])))
    rgb = np.asarray(top).reshape(-1, 3).astype(int)
    assert ((rgb[:, 1] > 150) & (rgb[:, 0] < 150)).any()  # the viridis greens of the heatmap


def test_every_section_is_filled_from_the_run(run_dir: Path, report: Path) -> None:
    html = report.read_text()
    data = json.loads((run_dir / "report.json").read_text())
    changes = [json.loads(line) for line in (run_dir / "changes.jsonl").read_text().splitlines()]
    for section in ("distributions", "budget", "operations", "examples", "unfixed", "gaveup", "invalid", "edits"):
        assert f'id="{section}"' in html
    assert html.count('<svg class="plot"') == 4
    for op in {c["operation"] for c in changes}:
        assert f"<b>{op}</b>" in html, f"no example of {op}"
    failed = [c for c in changes if c["verdict"] != "pass"]
    assert failed and 'class="verdict-fail"' in html and failed[0]["reason"].split("(")[0].strip() in html
    assert data["gave_up"] and all(g["edit_id"] in html for g in data["gave_up"])
    assert data["invalid_input"] and all(row["id"] in html for row in data["invalid_input"])
    for node in data["ledger"]["by_node"]:
        assert f"<td>{node}</td>" in html
    assert f"{data['ledger']['spent']:,}" in html
    ids = [a.get("id") for _, a in _tags(html) if a.get("id")]
    assert len(ids) == len(set(ids)), "duplicate element ids across inline SVGs"


def test_untrusted_text_is_escaped_and_unfixed_items_listed(run_dir: Path, tmp_path: Path) -> None:
    run = tmp_path / "evil-run"
    shutil.copytree(run_dir, run, ignore=shutil.ignore_patterns("*.sqlite*", "report.html"))
    data = json.loads((run / "report.json").read_text())
    refined = [json.loads(line) for line in (run / "refined.jsonl").read_text().splitlines()]
    refined[0]["question"] = EVIL + " what is $x^2$?"
    (run / "refined.jsonl").write_text("".join(json.dumps(r) + "\n" for r in refined))
    data["unfixed_flagged_items"] = [{"item_id": refined[0]["id"], "p_error": 0.83, "error_type": EVIL}]
    data["stop_reason"] = "budget exhausted " + EVIL
    data["gave_up"].append({"edit_id": "e-evil", "item_id": EVIL, "operation": "fix", "round": 1,
                            "status": "gave_up", "reason": EVIL, "attempts": 2})
    data["invalid_input"].append({"id": "rejected:x.csv:9", "reason": EVIL})
    data["metrics_after"]["coverage"][EVIL + "|$\\frac{a}{b}$"] = 0.05  # labels from the data reach the plots
    data["ledger"]["by_model"][EVIL] = {"tokens": 5, "calls": 1}
    data["notices"] = ["profiling will take most of the budget " + EVIL, {"not": "text"}]
    (run / "report.json").write_text(json.dumps(data))
    changes = (run / "changes.jsonl").read_text().splitlines()
    edit = json.loads(changes[-1])
    edit.update(reason=EVIL, evidence={"passage": EVIL},
                after={**(edit.get("after") or edit["before"]), "question": EVIL, "choices": [EVIL, "b", "c", "d"]})
    (run / "changes.jsonl").write_text("\n".join([*changes, json.dumps(edit)]) + "\n")

    html = build_report(run).read_text()
    tags = _tags(html)
    assert not [t for t, _ in tags if t == "script"]
    assert not [t for t, a in tags if "onerror" in a]
    assert not [t for t, _ in tags if t == "img"]
    assert "&lt;script&gt;alert(" in html
    assert html.count('<svg class="plot"') == 4
    unfixed = html[html.index('id="unfixed"'):html.index('id="gaveup"')]
    assert refined[0]["id"] in unfixed and "0.83" in unfixed and "what is $x^2$?" in unfixed
    assert "stopped on its budget" in unfixed
    assert "<b>note:</b> profiling will take most of the budget &lt;script&gt;" in html and "{&#39;not&#39;" not in html


def test_missing_report_json_is_a_clear_error(tmp_path: Path) -> None:
    from refinelab.cli.app import app

    (tmp_path / "runs" / "half").mkdir(parents=True)
    with pytest.raises(ReportError, match="no report.json"):
        build_report(tmp_path / "runs" / "half")
    (tmp_path / "runs" / "bad").mkdir()
    (tmp_path / "runs" / "bad" / "report.json").write_text("{not json")
    with pytest.raises(ReportError, match="not valid JSON"):
        build_report(tmp_path / "runs" / "bad")
    result = CliRunner().invoke(app, ["report", "half", "--runs-dir", str(tmp_path / "runs")])
    assert result.exit_code == 2 and "not a RefineLab run folder" in result.output  # an empty folder is no run
    (tmp_path / "runs" / "half" / "checkpoints.sqlite").touch()  # a run that has not finished
    result = CliRunner().invoke(app, ["report", "half", "--runs-dir", str(tmp_path / "runs")])
    assert result.exit_code == 2
    assert "no report.json" in result.output
    (tmp_path / "runs" / "bad" / "report.json").write_text("{}")
    for damaged, problem in (("{not json", "not valid JSON"), ('{"targets": [1]}', "field 'targets': expected")):
        (tmp_path / "runs" / "bad" / "settings.json").write_text(damaged)  # named, not drawn without targets
        with pytest.raises(ReportError, match=problem):
            build_report(tmp_path / "runs" / "bad")


def test_cli_report_by_run_id(run_dir: Path, tmp_path: Path) -> None:
    from refinelab.cli.app import app

    out = tmp_path / "r.html"
    result = CliRunner().invoke(app, ["report", run_dir.name, "--runs-dir", str(run_dir.parent), "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert out.stat().st_size > 10_000 and str(out) in result.output


def test_a_confirmed_fix_is_shown_as_confirmed(run_dir: Path, tmp_path: Path) -> None:
    """changes.jsonl's `outcome` on an edit's last attempt: a fix that passed with the item unchanged reads
    "confirmed" in the all-edits table, not "committed"."""
    run = tmp_path / "confirmed-run"
    shutil.copytree(run_dir, run, ignore=shutil.ignore_patterns("*.sqlite*", "report.html"))
    changes = [json.loads(line) for line in (run / "changes.jsonl").read_text().splitlines()]
    before = next(c["before"] for c in changes if c.get("before"))
    confirmed = {"edit_id": "r1-fix-confirmed", "round": 1, "attempt": 0, "item_id": before["id"],
                 "operation": "fix", "target": "", "before": before, "after": before, "verdict": "pass",
                 "reason": "retrieval supports the key", "evidence": {"method": "rag"}, "tokens": 90,
                 "outcome": "confirmed"}
    (run / "changes.jsonl").write_text("".join(json.dumps(c) + "\n" for c in [*changes, confirmed]))
    html = build_report(run).read_text()
    row = html[html.index("<code>r1-fix-confirmed</code>"):]
    row = row[:row.index("</tr>")]
    assert '<td class="outcome-confirmed">confirmed</td>' in row
