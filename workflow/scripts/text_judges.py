"""The text judges, trained on the judge split only: the reference LM (perplexity) and the sentiment classifier."""
import numpy as np
import torch

from baselines.gpt2 import LanguageModel
from diled import checkpoint, codecs
from diled.manifest import write_json
from diled.modalities.text.evaluation import Scorer, sentiment_judge, stream, stream_windows
from diled.snakemake_job import Job
from diled.train import TrainSpec, train

job = Job(snakemake, track="text")
view = job.view
codec = codecs.for_track("text", view)
tok = codec.tokenizer(snakemake.input.data)
judge, test = codec.load(snakemake.input.data, "judge"), codec.load(snakemake.input.data, "test")
net = {"block_size": view["data"]["block_size"], "decoder": {**view["judges"]["lm"]}}
window = int(view["judges"]["ppl_window"])
if window > net["block_size"] + 1:
    raise ValueError(f"text.judges.ppl_window ({window}) exceeds the reference LM's positions ({net['block_size'] + 1})")
rows = stream_windows(stream(tok, list(judge["text"])), window, max(1, window // 2))
torch.manual_seed(view["seed"])
lm = LanguageModel(net, tok.get_vocab_size()).to(job.device)
spec = TrainSpec(seed=view["seed"], **view["judges"]["lm_train"])
res = train(lm, lambda m, b: m.loss(b), rows, spec, snakemake.params.run_dir, desc="reference LM")
ref = res.ema.eval()
scorer = Scorer(ref, window, view["judges"]["ppl_stride"])
sums, counts = scorer.sentences(tok, list(test["text"]))
classifier = sentiment_judge(list(judge["text"]), judge["labels"], view["seed"])
accuracy = float((classifier.predict(list(test["text"])) == test["labels"]).mean())
record = {"reference_lm": {"train_windows": len(rows), "steps": res.steps, "wall_s": round(res.wall_s, 2),
                           "test_ppl": float(np.exp(sums.sum() / counts.sum())), "window": window,
                           "stride": view["judges"]["ppl_stride"]},
          "sentiment_judge": {"kind": "TF-IDF 1-2 grams + logistic regression (scikit-learn)", "train_sentences": len(judge["text"]),
                              "test_accuracy": accuracy}}
job.log(f"reference LM: test perplexity {record['reference_lm']['test_ppl']:.2f}; sentiment judge: test accuracy {accuracy:.3f}")
checkpoint.save({"net": net, "vocab": tok.get_vocab_size(), "state_dict": ref.state_dict()}, snakemake.output.judges)
write_json(job.manifest(**record), snakemake.output.record)
