"""Python XGBoost side of the GBDT benchmarks (run by benchmarks/gbdt/*.ts, never at fedmark run time).

Reads a JSON job from argv[1]: {"d": int, "sets": {name: {"X": path, "y": path | null, "n": int}},
"train": name, "predict": [names], "params": {...xgboost params...}, "rounds": int, "out": dir}, or
with "model": path instead of "train"/"params"/"rounds" to load a saved model and only predict.
Matrices are raw little-endian float32 (row-major n x d), labels float32. Writes, per predicted set,
<out>/<name>.pred.f64 (float64 probabilities) and prints one JSON line with the fit time.
"""
import json
import sys
import time

import numpy as np
import xgboost as xgb


def load(spec, d):
    X = np.fromfile(spec["X"], dtype="<f4").reshape(spec["n"], d)
    y = np.fromfile(spec["y"], dtype="<f4") if spec.get("y") else None
    return X, y


def main():
    job = json.load(open(sys.argv[1]))
    d = job["d"]
    sets = {k: load(v, d) for k, v in job["sets"].items()}
    t0 = time.perf_counter()
    if job.get("model"):
        booster = xgb.Booster(model_file=job["model"])
    else:
        X, y = sets[job["train"]]
        booster = xgb.train(job["params"], xgb.DMatrix(X, label=y), num_boost_round=job["rounds"])
    fit = time.perf_counter() - t0
    for name in job["predict"]:
        Xp, _ = sets[name]
        booster.predict(xgb.DMatrix(Xp)).astype("<f8").tofile(f"{job['out']}/{name}.pred.f64")
    if job.get("saveModel"):
        booster.save_model(job["saveModel"])
    print(json.dumps({"fitSeconds": fit, "xgboost": xgb.__version__}))


if __name__ == "__main__":
    main()
