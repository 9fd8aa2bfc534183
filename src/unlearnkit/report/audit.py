"""The audit of one erasure (``unlearnkit forget``): ``audit.json`` and a self-contained ``audit.html``.

The page is written for a reader who did not run the job (a data-protection officer): what was
asked, what was done, what was measured before and after, what was verified and what was not. It is
one file with inline CSS and inline SVG: no scripts, no fonts, no network, opens from disk.

The runner decides each check (``audit["checks"]``: passed, failed, or not computed); this module
only puts them in words. "Verified" lists passed checks and nothing else; failed checks stand in
their own box first, each starting "FAILED:", so no failure reads as a verification. The audit
reads the runner's plain dict and imports nothing from the runner.
"""

from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Any

from unlearnkit.io import json_bytes, write_bytes

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
    """The audit's two files as bytes, ``audit.json`` (with the statements in words) and ``audit.html``."""
    verified, failed, not_covered = statements(audit)
    full = {**audit, "verified": verified, "failed": failed, "not_covered": not_covered}
    return {"audit.json": json_bytes(full), "audit.html": render_audit_html(full).encode()}


def write_audit(out: str | Path, audit: dict[str, Any]) -> dict[str, Any]:
    """Write ``OUT/audit.html``, then ``OUT/audit.json`` (last: it marks a finished job); returns what it holds."""
    files = audit_files(audit)
    for name in ("audit.html", "audit.json"):
        write_bytes(Path(out) / name, files[name])
    return json.loads(files["audit.json"])


# -- the checks in words -----------------------------------------------------------------------------

def _pct(x: float | None) -> str:
    return "–" if x is None else f"{x:.1%}"


def _check_text(c: dict[str, Any], audit: dict[str, Any]) -> str:
    """One check in words a reader without the jargon reads right: passed and failed say so plainly."""
    t, ok = c["check"], c["passed"]
    n = audit["forget"]["examples"]
    target_from = audit["targets"]["from"]
    if t == "forget_accuracy":
        if ok:
            return (f"The model no longer recognises the {n} erased images better than it should: accuracy on them went "
                    f"from {_pct(c['before'])} to {_pct(c['after'])}, within {c['tolerance']:.0%} of the "
                    f"{_pct(c['target'])} expected from {target_from}.")
        side = "still recognises them too well" if c["after"] > c["target"] else             "now gets them wrong more often than a model that never saw them, which itself shows they were erased"
        return (f"FAILED: accuracy on the {n} erased images went from {_pct(c['before'])} to {_pct(c['after'])}; "
                f"{target_from} gives {_pct(c['target'])}. The model {side}.")
    if t == "forget_confidence":
        want = f"at most {c['target']:.3f}" if c["bound"] else f"about {c['target']:.3f}"
        if ok:
            return (f"The model's confidence in the right answer on the erased images went from {c['before']:.3f} to "
                    f"{c['after']:.3f}; {target_from} gives {want}.")
        return (f"FAILED: the model's confidence in the right answer on the erased images is {c['after']:.3f} "
                f"(was {c['before']:.3f}); {target_from} gives {want}.")
    if t in ("retain_accuracy", "test_accuracy", "test_accuracy_kept_classes"):
        what = {"retain_accuracy": "the training images it should keep",
                "test_accuracy": "test images",
                "test_accuracy_kept_classes": "test images of the classes it should keep"}[t]
        if ok:
            return f"The model still works: accuracy on {what} went from {_pct(c['before'])} to {_pct(c['after'])}."
        return (f"FAILED: the model lost accuracy it should keep, on {what}: {_pct(c['before'])} before, "
                f"{_pct(c['after'])} after. A smaller learning rate or budget, or another --method, may keep more.")
    if t == "utility_guard":
        return _guard_text(c)
    if t == "loss_mia":
        if ok is None:
            return f"A loss-based membership attack could not run: {c['why_not']}."
        if ok:
            return (f"A loss-based membership attack tells the erased images from never-seen test images only "
                    f"{_pct(c['after'])} of the time (50% is a coin toss; {_pct(c['before'])} before).")
        return (f"FAILED: a loss-based membership attack still tells the erased images from never-seen test images "
                f"{_pct(c['after'])} of the time (50% would be a coin toss; {_pct(c['before'])} before).")
    if t == "svc_mia":
        if ok is None:
            return f"The SVC membership attack could not run: {c['why_not']}."
        verdict = "" if ok else "FAILED: "
        return (f"{verdict}The SVC membership attack calls {_pct(c['after'])} of the erased images unseen "
                f"({_pct(c['before'])} before) and {_pct(c['baseline'])} of truly unseen images"
                + ("." if ok else "; the two should be close."))
    if t == "eps_delta":
        if ok is None:
            return f"The statistical comparison with retrained models (the (ε, δ) score) was not computed: {c['why_not']}."
        text = (f"against {c['n']} models retrained without these images, the method's (ε, δ) forgetting quality is "
                f"F = {c['method']:.3f}, where another {c['n']} retrains (a perfect erasure) score {c['ceiling']:.3f}")
        return (text[0].upper() + text[1:] + ".") if ok else             f"FAILED: {text}; below {c['share']:.0%} of a perfect erasure's, the model stays distinguishable from a retrain."
    if t == "eps_delta_shadows":
        return _shadow_text(c)
    if t == "feature_forgetting":
        if ok is None:
            return f"Whether the erased images can still be recognised from the model's features was not measured: {c['why_not']}."
        text = (f"on a fresh linear head fitted to the model's own penultimate features, the same (ε, δ) comparison "
                f"with {c['n']} retrains gives feature F = {c['method']:.3f}, where retrains score {c['ceiling']:.3f}")
        return ((text[0].upper() + text[1:] + ": the erased images are no easier to recognise from its features than "
                 "from a retrain's.") if ok else
                f"FAILED: {text}; below {c['share']:.0%} of a retrain's, the erased images are still recognisable from "
                "the features (what a new head trained on them would read).")
    if t == "cost":
        if ok is None:
            return "The erasure's cost against a retrain could not be measured."
        cost = audit["cost"]
        time = (f"; wall time {cost['seconds']:.1f} s, {_pct(cost['time_ratio'])} of one retrain's under "
                f"{_conditions(cost['conditions'])}" if cost.get("time_ratio") is not None else
                f"; wall time {cost['seconds']:.1f} s under {_conditions(cost['conditions'])} (no retrain timed "
                "under the same conditions to compare with)")
        head = "" if ok else "FAILED: "
        return (f"{head}The erasure used {_pct(c['ratio'])} of one retrain's {c['unit']}, "
                + ("within" if ok else "over") + f" the limit of {c['limit']:.0%}{time}.")
    return f"{t}: {'passed' if ok else 'failed' if ok is False else 'not computed'}."


def _shadow_text(c: dict[str, Any]) -> str:
    """The shadow-based estimate of the (ε, δ) score (runner.forget.verify_with_shadows) in words."""
    first, last = c["shadows"]
    without = "one whole class" if c["leave_out"] == "class" else f"{c['leave_out']:.1%} of the people"
    text = (f"Estimated without retrains: against {c['n']} approximate references drawn from a prepared pool's shadows "
            f"{first}..{last} (models trained without {without} each: shadows, not retrains), "
            f"the method's F is about {c['method']:.3f}, where the pool's two halves score {c['halves']:.3f} against "
            "each other")
    if c.get("exact") is not None:
        text += f" (its exact F against retrains: {c['exact']:.3f})"
    if not c["independent"]:
        text += "; not independent: the method took its targets from these same shadows"
    return (text + ". An estimate, not a verification: on our benches such estimates tracked the exact F of methods "
            "far below the ceiling, but rated true retrains at half to three fifths of theirs, so a value near the "
            "halves' does not tell a complete erasure from a partial one (docs/prepared_models.md).")


def _guard_text(c: dict[str, Any]) -> str:
    """The utility guard's verdict (methods.guard.GuardOutcome's fields) in words."""
    tol = f"{100 * c['tolerance']:g} points"
    val = ("" if c.get("val") is None else
           f" and {_pct(c['val'])} on validation images (original {_pct(c['original_val'])})")
    how = ("the method's own result" if c["chosen"] == "final" else
           f"the method's state at check point {c['chosen_point']} of {c['points']}" if c["chosen"] == "point" else
           f"the method's result blended back towards the original, keeping {c['blend']:.0%} of its change")
    cost = f"the guard's checks cost {c['compute']:.0f} example passes, counted in the erasure's cost"
    if c["passed"]:
        return (f"The utility guard kept the model within {tol} of the original: {_pct(c['retain'])} on a sample of the "
                f"kept training images (original {_pct(c['original_retain'])}){val}; the delivered model is {how}; {cost}.")
    return (f"FAILED: the utility guard found no state within {tol} of the original; the delivered model ({how}) scores "
            f"{_pct(c['retain'])} on a sample of the kept training images (original {_pct(c['original_retain'])}){val}; "
            f"{cost}. A smaller learning rate, a larger --guard-tolerance, or another --method may keep more.")


def _conditions(conditions: dict[str, Any] | None) -> str:
    if not conditions:
        return "unrecorded conditions"
    return ", ".join(f"{k} {v}" for k, v in sorted(conditions.items()))


def statements(audit: dict[str, Any]) -> tuple[list[str], list[str], list[str]]:
    """The audit in words: (verified: passed checks only, failed or not computed, what it does not cover)."""
    verified = [_check_text(c, audit) for c in audit["checks"] if c["passed"] is True]
    failed = [_check_text(c, audit) for c in audit["checks"] if c["passed"] is False]
    failed += [_check_text(c, audit) for c in audit["checks"] if c["passed"] is None]
    q = audit["forgetting_quality"]
    not_covered = []
    if q.get("verified"):
        not_covered.append(f"The (ε, δ) score holds for the method run with these seeds; it is a statistical test over "
                           f"{q['n']} models per side, not a proof about the one delivered model.")
    if not audit["checkpoint"]["format"].startswith("unlearnkit"):
        not_covered.append("How the checkpoint was trained: a state dict records no recipe, so references and costs "
                           "assume the architecture's default recipe and any train.* settings given.")
    not_covered.append("Other copies of the original model, and the training data itself, are untouched: delete them "
                       "separately.")
    return verified, failed, not_covered


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


PERCENT = {"retain_accuracy", "test_accuracy", "test_accuracy_kept_classes", "forget_accuracy", "loss_mia",
           "svc_mia_efficacy", "svc_mia_baseline"}
LABELS = {
    "retain_accuracy": ("Accuracy, retained training images", "should stay where it was"),
    "test_accuracy": ("Accuracy, test images", "should stay where it was (for erased classes: drops by their share)"),
    "test_accuracy_kept_classes": ("Accuracy, test images of the kept classes", "should stay where it was"),
    "forget_accuracy": ("Accuracy, erased images", "should move to the target"),
    "forget_confidence": ("Mean confidence in the right answer, erased images", "should move to the target"),
    "loss_mia": ("Loss MIA accuracy (erased vs test images)", "50% = the attack cannot tell them apart"),
    "svc_mia_efficacy": ("SVC MIA: erased images called unseen", "should move to the next line"),
    "svc_mia_baseline": ("SVC MIA: test images called unseen", "the attack's rate on truly unseen images"),
}


def _bars(measures: dict[str, dict], targets: dict[str, Any]) -> str:
    """Forget-set accuracy and confidence before and after, against their targets (inline SVG)."""
    rows = [("accuracy", "forget_accuracy", targets["accuracy"]), ("confidence", "forget_confidence", targets["confidence"])]
    width, left, bar = 560, 180, 14
    parts, y = [], 10
    for label, key, target in rows:
        for when, colour in (("before", "#8c96a3"), ("after", "#2f6fb3")):
            value = measures[key][when]
            if value is None:
                continue
            w = max(0.0, min(1.0, value)) * (width - left - 60)
            parts.append(f'<text x="0" y="{y + 11}">erased {label}, {when}</text>'
                         f'<rect x="{left}" y="{y}" width="{w:.1f}" height="{bar}" fill="{colour}"/>'
                         f'<text x="{left + w + 4:.1f}" y="{y + 11}">{value:.1%}</text>')
            y += bar + 6
        if target is not None:
            x = left + max(0.0, min(1.0, target)) * (width - left - 60)
            top = y - 2 * (bar + 6)
            parts.append(f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{top - 3}" y2="{y - 3}" stroke="#b35900" stroke-width="2" '
                         f'stroke-dasharray="4 2"/><text x="{x + 3:.1f}" y="{y + 9}" fill="#b35900">target: {target:.1%}</text>')
        y += 22
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{y}" role="img" '
            f'aria-label="accuracy and confidence on the erased images before and after, against the target">'
            + "".join(parts) + "</svg>")


def render_audit_html(audit: dict[str, Any]) -> str:
    """The audit as one self-contained HTML page."""
    s, f, m, meth = audit["setting"], audit["forget"], audit["measures"], audit["method"]
    q, cost = audit["forgetting_quality"], audit["cost"]
    ds = s["dataset"]
    request = ", ".join(f"{k} {v if not isinstance(v, list) else ','.join(map(str, v))}" for k, v in f["request"].items())
    m = {k: v for k, v in m.items() if k != "test_accuracy_kept_classes" or f["classes"]}
    out = [f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>Erasure audit: {_e(ds['name'])}</title>"
           f"<meta name='viewport' content='width=device-width,initial-scale=1'><style>{CSS}</style></head><body>",
           f"<h1>Erasure audit</h1><p class='sub'>{f['examples']} training images"
           + (f" of {len(f['people'])} people" if f["people"] else "")
           + f" removed from <code>{_e(audit['checkpoint']['path'])}</code> ({_e(ds['name'])}, "
           f"{_e(s['model']['name'])}) with <b>{_e(meth['name'])}</b>. Request: {_e(request)}.</p>"]
    if audit["failed"]:
        out.append("<div class='box no'><h2 style='margin-top:.3rem'>Not verified / failed</h2><p>These checks failed "
                   "or could not be made. Do not treat the erasure as done until they are resolved.</p><ul class='no'>"
                   + "".join(f"<li>{_e(t)}</li>" for t in audit["failed"]) + "</ul></div>")
    out.append("<div class='box ok'><h2 style='margin-top:.3rem'>Verified</h2><ul class='ok'>"
               + ("".join(f"<li>{_e(t)}</li>" for t in audit["verified"]) or "<li>No check passed.</li>") + "</ul></div>")
    out.append("<div class='box'><h2 style='margin-top:.3rem'>What this audit does not cover</h2><ul>"
               + "".join(f"<li>{_e(t)}</li>" for t in audit["not_covered"]) + "</ul></div>")

    tg = audit["targets"]
    out.append("<h2>Before and after</h2><p>Target for the erased images: " + _e(tg["from"]) + f", accuracy "
               f"{tg['accuracy']:.1%}, confidence {'at most ' if tg['confidence_is_bound'] else ''}{tg['confidence']:.3f}.</p>"
               + _bars(m, tg))
    rows = [[f"<td>{_e(LABELS.get(k, (k, ''))[0])}</td>",
             _td(v["before"], k in PERCENT), _td(v["after"], k in PERCENT),
             _td(v.get("not_computed") or LABELS.get(k, (k, ""))[1], note=True)] for k, v in m.items()]
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
                 _td(r.get("feature_quality")), _td(r["accuracy"]["forget"], True), _td(r["accuracy"]["retain"], True),
                 _td(r["accuracy"]["test"], True)]
                for name, r in ((meth["name"], q["method"]), ("retrain (ceiling)", q["ceiling"]))]
        out.append(f"<p>{q['n']} runs of the method against {q['n']} models retrained from scratch without the forgotten "
                   f"images (δ = {q['delta']:g}); the ceiling is {q['n']} more retrains scored the same way, the best "
                   "any unlearner can do at this N. References: "
                   f"<code>{_e(q['references_cache'])}</code> ({q['references_trained_now']} trained by this run).</p>")
        out.append(_table(["", "F", "F bounded", "score", "feature F", "forget acc", "retain acc", "test acc"], rows))
        out.append("<p>Feature F: the same score on the outputs of a fresh linear head fitted to each model's own "
                   "penultimate features (docs/feature_forgetting.md): whether the forgotten images can still be "
                   "recognised from what the model computes, not only from what it predicts.</p>")
    else:
        out.append(f"<p>Not computed: {_e(q['why_not'])}.</p>")
    shadows = audit.get("shadow_audit") or {}
    if shadows.get("computed"):
        out.append(f"<p>Shadow-based estimate (pool <code>{_e(shadows['pool'])}</code>): {_e(_shadow_text(shadows))}</p>")

    out.append("<h2>Cost</h2>")
    cost_rows = [("compute (example passes)", f"{cost['compute']:.0f}" if cost.get("compute") is not None else "–"),
                 ("x one retrain (compute)", _num(cost.get("compute_ratio"), True)),
                 ("optimizer steps", cost["steps"]), ("x one retrain (steps)", _num(cost["step_ratio"], True)),
                 ("wall time", f"{cost['seconds']:.2f} s under {_conditions(cost.get('conditions'))}"),
                 ("x one retrain (time)", _num(cost["time_ratio"], True)
                  + (f" ({cost['retrain_seconds_from']})" if cost["retrain_seconds_from"] else
                     f" ({cost['no_time_ratio_because']})" if cost.get("no_time_ratio_because") else "")),
                 ("peak memory", f"{cost['peak_memory_bytes'] / 2**20:.0f} MiB" if cost["peak_memory_bytes"] else "–")]
    out.append(_table(["", ""], [[f"<td>{_e(a)}</td>", f"<td>{_e(b)}</td>"] for a, b in cost_rows]))

    out.append("<h2>Method</h2>")
    out.append(f"<p><b>{_e(meth['name'])}</b>, chosen as {_e(meth['chosen_because'])}. Seed {meth['seed']}"
               + (f", budget {meth['budget']} x one retrain's compute ({meth['budget_compute']:.0f} example passes)"
                  if meth["budget"] else ", no budget")
               + (", <b>stopped by the budget</b>" if meth["stopped_by_budget"] else "") + ".</p>")
    if meth.get("regime_summary"):
        out.append(f"<p>Regime-aware defaults: {_e(meth['regime_summary'])}.</p>")
    out.append(f"<pre><code>{_e(json.dumps(meth['config'], indent=2, sort_keys=True))}</code></pre>")
    guard = audit.get("guard")
    out.append("<h2>Utility guard</h2>")
    out.append(f"<p>{_e(_guard_text(guard))}</p>" if guard is not None
               else "<p>Off (--no-guard): the method's model is delivered as it is, whatever accuracy it kept.</p>")

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
