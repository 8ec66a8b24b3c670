"""One text model's Table 1 record: reconstruction, generation, editing, interpolation, latent health."""
import numpy as np

from baselines.gpt2 import LanguageModel
from diled import checkpoint, codecs, registry, stages
from diled.manifest import write_json
from diled.metrics import text as mt
from diled.modalities.text.evaluation import (
    Scorer,
    editing,
    generate,
    generation_metrics,
    interpolations,
    latent_health,
    reconstruction,
    sentiment_judge,
)
from diled.snakemake_job import Job

job = Job(snakemake, track="text")
view, name = job.view, snakemake.wildcards.model
spec = registry.get("text", name)
ev = view["eval"]
codec = codecs.for_track("text", view)
tok = codec.tokenizer(snakemake.input.data)
train_a, test_a, judge_a = (codec.load(snakemake.input.data, s) for s in ("train", "test", "judge"))
train_b = tuple(x.to(job.device) for x in codec.to_model(train_a))
test_b = tuple(x.to(job.device) for x in codec.to_model(test_a))
model, ckpt = stages.load_model(snakemake.input.model, job.device)
j = checkpoint.load(snakemake.input.judges)
ref = LanguageModel(j["net"], j["vocab"])
ref.load_state_dict(j["state_dict"])
scorer = Scorer(ref.to(job.device).eval(), view["judges"]["ppl_window"], view["judges"]["ppl_stride"])
judge = sentiment_judge(list(judge_a["text"]), judge_a["labels"], view["seed"])
sources, training = list(test_a["text"]), list(train_a["text"])
seen = training + list(codec.load(snakemake.input.data, "pool").get("text", []))  # a copied pool sentence is a copy too
record = {"model": name, "display": spec.display, "trained": ckpt["info"], "generation": {}}

if spec.can("reconstruct"):
    outs, rec = reconstruction(model, test_b, tok, sources, ev["batch_size"])
    record["reconstruction"] = {**rec, "examples": [{"source": s, "output": o} for s, o in zip(sources[:8], outs[:8])]}
    n_fit = min(len(sources), len(training))  # the same number of training sentences: memorised or generalised?
    _, rec_train = reconstruction(model, tuple(b[:n_fit] for b in train_b), tok, training[:n_fit], ev["batch_size"])
    record["reconstruction_train"] = rec_train
    record["health"] = latent_health(model, test_b, view["seed"])
    job.log(f"{name}: reconstruction BLEU {rec['bleu']:.2f} [{rec['bleu_lo']:.2f}, {rec['bleu_hi']:.2f}] (training sentences: "
            f"{rec_train['bleu']:.2f}); health {record['health']}")
for steps in spec.steps(view):
    samples = generate(model, ev["num_samples"], steps, view["seed"], ev["batch_size"], tok)
    g = generation_metrics(samples, scorer, tok, seen)
    record["generation"][str(steps)] = {**g, "samples": samples}
    job.log(f"{name} T={steps}: PPL {g['ppl']:.1f}, self-BLEU {g['self_bleu']:.1f}, dist-2 {g['distinct_2']:.3f}")
if spec.can("edit"):
    rows, info = editing(model, train_b, test_b, tok, judge, ev["edit_scales"], ev["batch_size"])
    for r in rows:
        outs = r.pop("outputs")
        r["input_bleu"] = float(np.mean(mt.sentence_bleus(sources, outs)))
        sums, counts = scorer.sentences(tok, outs)
        r["ppl"] = float(np.exp(sums.sum() / max(counts.sum(), 1)))
        r["success_lo"], r["success_hi"] = mt.binomial_ci(r["hits"], r["n"])
        r["examples"] = [{"source": s, "label": int(y), "output": o} for s, y, o in zip(sources[:6], test_a["labels"][:6], outs[:6])]
    record["editing"] = {"rows": rows, **info}
    job.log(f"{name}: edit success " + ", ".join(f"s={r['scale']:g}: {r['success']:.2f}" for r in rows))
if spec.can("interpolate"):
    record["interpolation"] = interpolations(model, test_b, tok, ev["interp_pairs"], ev["interp_alphas"])
    for it in record["interpolation"]:
        it["source_a"], it["source_b"] = sources[it["a"]], sources[it["b"]]
write_json(job.manifest(**record), snakemake.output.record)
