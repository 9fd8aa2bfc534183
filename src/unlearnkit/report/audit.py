"""The audit of one erasure (``unlearnkit forget``): ``audit.json`` and a self-contained ``audit.html``.

The page is written for a reader who did not run the job (a data-protection officer): what was
asked, what was done, what was measured before and after, what was verified and what was not. It is
one file with inline CSS and inline SVG: no scripts, no fonts, no network, opens from disk.
"""

from __future__ import annotations

import html
import json
from typing import Any

from unlearnkit.io import json_bytes

CSS = """
body{font:15px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#1d232b;max-width:60rem;margin:2rem auto;padding:0 1rem}
h1{font-size:1.5rem;margin-bottom:.2rem}h2{font-size:1.15rem;margin-top:2rem;border-bottom:1px solid #d5dae0}
.sub{color:#5a6572;margin-top:0}
table{border-collapse:collapse;margin:.5rem 0;font-variant-numeric:tabular-nums}
th,td{padding:.25rem .7rem;border-bottom:1px solid #e4e8ec;text-align:right;vertical-align:top}
th:first-child,td:first-child{text-align:left}th{background:#f3f5f7}
td.note,th.note{text-align:left;color:#5a6572;font-size:.9em}
ul.ok li::marker{content:"\\2713  ";color:#1a7f37}ul.no li::marker{content:"\\2717  ";color:#b35900}
.box{border:1px solid #d5dae0;border-radius:6px;padding:.5rem 1rem;margin:.8rem 0}
.box.ok{border-left:5px solid #1a7f37}.box.no{border-left:5px solid #b35900}
code{background:#f3f5f7;padding:0 .25rem;border-radius:3px}
svg text{font:12px system-ui,sans-serif;fill:#1d232b}
"""


def audit_files(audit: dict[str, Any]) -> dict[str, bytes]:
    """The audit's two files as bytes: ``audit.json`` and ``audit.html``."""
    return {"audit.json": json_bytes(audit), "audit.html": render_audit_html(audit).encode()}


def _e(value: Any) -> str:
    return html.escape(str(value))


def _num(value: Any, pct: bool = False) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.1%}" if pct else f"{value:.3f}"
    return _e(value)


def _table(head: list[str], rows: list[list[str]]) -> str:
    th = "".join(f"<th>{_e(h)}</th>" for h in head)
    body = "".join("<tr>" + "".join(row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{th}</tr></thead><tbody>{body}</tbody></table>"


def _td(value: Any, pct: bool = False, note: bool = False) -> str:
    return f'<td class="note">{_e(value)}</td>' if note else f"<td>{_num(value, pct)}</td>"


PERCENT = {"retain_accuracy", "test_accuracy", "forget_accuracy", "unseen_accuracy", "loss_mia", "svc_mia_efficacy",
           "svc_mia_baseline"}
LABELS = {
    "retain_accuracy": "Accuracy, retained training images",
    "test_accuracy": "Accuracy, test images",
    "forget_accuracy": "Accuracy, forgotten images",
    "forget_confidence": "Mean confidence, forgotten images",
    "unseen_accuracy": "Accuracy, people never seen (target)",
    "unseen_confidence": "Mean confidence, people never seen (target)",
    "loss_mia": "Loss MIA accuracy (forgotten vs unseen)",
    "svc_mia_efficacy": "SVC MIA: forgotten images called unseen",
    "svc_mia_baseline": "SVC MIA: unseen images called unseen",
}


def _bars(measures: dict[str, dict]) -> str:
    """Forget-set accuracy and confidence before and after, against the unseen-people level (inline SVG)."""
    rows = [("accuracy", "forget_accuracy", "unseen_accuracy"), ("confidence", "forget_confidence", "unseen_confidence")]
    width, left, bar = 560, 180, 14
    parts, y = [], 10
    for label, key, target_key in rows:
        target = measures[target_key]["before"]
        for when, colour in (("before", "#8c96a3"), ("after", "#2f6fb3")):
            value = measures[key][when]
            if value is None:
                continue
            w = max(0.0, min(1.0, value)) * (width - left - 60)
            parts.append(f'<text x="0" y="{y + 11}">forget {label}, {when}</text>'
                         f'<rect x="{left}" y="{y}" width="{w:.1f}" height="{bar}" fill="{colour}"/>'
                         f'<text x="{left + w + 4:.1f}" y="{y + 11}">{value:.1%}</text>')
            y += bar + 6
        if target is not None:
            x = left + max(0.0, min(1.0, target)) * (width - left - 60)
            top = y - 2 * (bar + 6)
            parts.append(f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{top - 3}" y2="{y - 3}" stroke="#b35900" stroke-width="2" '
                         f'stroke-dasharray="4 2"/><text x="{x + 3:.1f}" y="{y + 9}" fill="#b35900">never seen: {target:.1%}</text>')
        y += 22
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{y}" role="img" '
            f'aria-label="forget-set accuracy and confidence before and after, against the never-seen level">'
            + "".join(parts) + "</svg>")


def render_audit_html(audit: dict[str, Any]) -> str:
    """The audit as one self-contained HTML page."""
    s, f, m, meth = audit["setting"], audit["forget"], audit["measures"], audit["method"]
    q, cost = audit["forgetting_quality"], audit["cost"]
    ds = s["dataset"]
    request = ", ".join(f"{k} {v if not isinstance(v, list) else ','.join(map(str, v))}" for k, v in f["request"].items())
    out = [f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>Erasure audit: {_e(ds['name'])}</title>"
           f"<meta name='viewport' content='width=device-width,initial-scale=1'><style>{CSS}</style></head><body>",
           f"<h1>Erasure audit</h1><p class='sub'>{f['examples']} training images"
           + (f" of {len(f['people'])} people" if f["people"] else "")
           + f" removed from <code>{_e(audit['checkpoint']['path'])}</code> ({_e(ds['name'])}, "
           f"{_e(s['model']['name'])}) with <b>{_e(meth['name'])}</b>. Request: {_e(request)}.</p>"]
    out.append("<div class='box ok'><h2 style='margin-top:.3rem'>Verified</h2><ul class='ok'>"
               + "".join(f"<li>{_e(t)}</li>" for t in audit["verified"]) + "</ul></div>")
    out.append("<div class='box no'><h2 style='margin-top:.3rem'>Not verified</h2><ul class='no'>"
               + "".join(f"<li>{_e(t)}</li>" for t in audit["not_verified"]) + "</ul></div>")

    out.append("<h2>Before and after</h2>" + _bars(m))
    rows = [[f"<td>{_e(LABELS.get(k, k))}</td>",
             _td(v["before"], k in PERCENT), _td(v["after"], k in PERCENT),
             _td(v.get("not_computed") or v["reading"], note=True)] for k, v in m.items()]
    out.append(_table(["measure", "before", "after", "how to read it"], rows))

    if audit["per_identity"]:
        out.append("<h2>Per person</h2><p>Accuracy and mean confidence on each person's images; mean ε over them "
                   "where the (ε, δ) score was computed (0 = indistinguishable from retraining, larger = still remembered).</p>")
        rows = [[f"<td>{_e(r['identity'])}</td>", _td(r["images"]), _td(r["accuracy"]["before"], True),
                 _td(r["accuracy"]["after"], True), _td(r["confidence"]["before"]), _td(r["confidence"]["after"]),
                 _td(r["mean_epsilon"])] for r in audit["per_identity"]]
        out.append(_table(["person", "images", "accuracy before", "after", "confidence before", "after", "mean ε"], rows))

    out.append("<h2>(ε, δ) forgetting quality</h2>")
    if q["verified"]:
        rows = [[f"<td>{_e(name)}</td>", _td(r["forget_quality"]), _td(r["forget_quality_bounded"]), _td(r["score"]),
                 _td(r["accuracy"]["forget"], True), _td(r["accuracy"]["retain"], True), _td(r["accuracy"]["test"], True)]
                for name, r in ((meth["name"], q["method"]), ("retrain (ceiling)", q["ceiling"]))]
        out.append(f"<p>{q['n']} runs of the method against {q['n']} models retrained from scratch without the forgotten "
                   f"images (δ = {q['delta']:g}); the ceiling is {q['n']} more retrains scored the same way, the best "
                   "any unlearner can do at this N. References: "
                   f"<code>{_e(q['references_cache'])}</code> ({q['references_trained_now']} trained by this run).</p>")
        out.append(_table(["", "F", "F bounded", "score", "forget acc", "retain acc", "test acc"], rows))
    else:
        out.append(f"<p>Not computed: {_e(q['why_not'])}.</p>")

    out.append("<h2>Cost</h2>")
    cost_rows = [("wall time", f"{cost['seconds']:.2f} s"), ("optimizer steps", cost["steps"]),
                 ("one retrain's steps", cost["retrain_steps"]),
                 ("x one retrain (steps)", _num(cost["step_ratio"], True)),
                 ("x one retrain (time)", _num(cost["time_ratio"], True)
                  + (f" ({cost['retrain_seconds_from']})" if cost["retrain_seconds_from"] else "")),
                 ("peak memory", f"{cost['peak_memory_bytes'] / 2**20:.0f} MiB" if cost["peak_memory_bytes"] else "–")]
    out.append(_table(["", ""], [[f"<td>{_e(a)}</td>", f"<td>{_e(b)}</td>"] for a, b in cost_rows]))

    out.append("<h2>Method</h2>")
    out.append(f"<p><b>{_e(meth['name'])}</b>, chosen as {_e(meth['chosen_because'])}. Seed {meth['seed']}"
               + (f", budget {meth['budget']} x one retrain's steps ({meth['budget_steps']} steps)" if meth["budget"] else ", no budget")
               + (", <b>stopped by the budget</b>" if meth["stopped_by_budget"] else "") + ".</p>")
    out.append(f"<pre><code>{_e(json.dumps(meth['config'], indent=2, sort_keys=True))}</code></pre>")

    out.append("<h2>Setting and provenance</h2>")
    prov = audit["provenance"]
    facts = [("dataset", f"{ds['name']} from {ds['source']}: {ds['examples']} images, {ds['classes']} classes, "
                         f"{ds['groups']} people; fingerprint {ds['fingerprint']}"),
             ("forget set", f"{f['kind']}, {f['examples']} images, fingerprint {f['fingerprint']}"),
             ("checkpoint", f"{audit['checkpoint']['path']} ({audit['checkpoint']['format']}); training recipe from "
                            f"{audit['checkpoint']['recipe_from']}"),
             ("model", f"{s['model']['name']} {json.dumps(s['model']['config'])}"),
             ("runtime", f"{s['runtime']['device']}, bf16 {s['runtime']['bf16']}"),
             ("setting fingerprint", s["fingerprint"]),
             ("software", f"unlearnkit {prov.get('unlearnkit')} (git {prov.get('git') or 'unknown'}), torch {prov.get('torch')}, "
                          f"python {prov.get('python')}, {prov.get('platform')}"),
             ("audit version", audit["audit_version"])]
    out.append(_table(["", ""], [[f"<td>{_e(a)}</td>", f'<td class="note">{_e(b)}</td>'] for a, b in facts]))
    out.append("</body></html>\n")
    return "".join(out)
