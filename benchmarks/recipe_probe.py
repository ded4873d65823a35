"""Research probe, not part of the pipeline: train one candidate network outside the sweep.

    .venv/bin/python benchmarks/recipe_probe.py deotte --epochs 5 --seed 0 --data <storage>/scaled_mnist.npz

Trains a network that is not a preset yet on the sweep's training images (the
same validation split, SWEEP_VALIDATION_SEED), then prints its validation and
test accuracy and training seconds, and saves its class probabilities for both
(`--out`, .npz) so they can be averaged with a sweep's candidates. It answers
"is this recipe worth a preset?" in minutes; a recipe that is becomes a preset
(ml/model/presets.py, architectures.py) and is then measured by the sweep.
"""
import argparse
import math
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from keras import layers  # noqa: E402

from mnist_pipeline.ml.model import architectures as A  # noqa: E402
from mnist_pipeline.ml.model.candidates import SWEEP_VALIDATION_SEED  # noqa: E402
from mnist_pipeline.ml.model.split import validation_split  # noqa: E402
from mnist_pipeline.ml.model.split import validation_split
from mnist_pipeline.ml.model import architectures as A

p = argparse.ArgumentParser()
p.add_argument("variant"); p.add_argument("--epochs", type=int, default=5); p.add_argument("--seed", type=int, default=0)
p.add_argument("--lr", type=float, default=0.003); p.add_argument("--batch", type=int, default=120)
p.add_argument("--data", required=True, help="a scaled_mnist.npz (e.g. a sweep's <storage>/scaled_mnist.npz)")
p.add_argument("--out", help="where to save the probabilities (.npz: val, test)")
a = p.parse_args()
d = np.load(a.data, allow_pickle=False)
x, y, xt, yt = d["train_images"], d["train_labels"], d["test_images"], d["test_labels"]
tr, va = validation_split(len(x), 0.1, SWEEP_VALIDATION_SEED)

def bn(f, k=3, s=1, pad="valid"):
    return [layers.Conv2D(f, k, strides=s, padding=pad, use_bias=False), layers.BatchNormalization(), layers.ReLU()]
def aug(zoom=0.0, rot=A.ROTATION_FRACTION):
    out = [layers.RandomRotation(rot, fill_mode="constant", seed=a.seed)] if rot else []
    if zoom: out.append(layers.RandomZoom(zoom, fill_mode="constant", seed=a.seed))
    out.append(layers.RandomTranslation(0.1, 0.1, fill_mode="constant", seed=a.seed))
    return out
head = lambda drop=0.4: [layers.Flatten(), layers.Dense(128, use_bias=False), layers.BatchNormalization(), layers.ReLU(), layers.Dropout(drop, seed=a.seed), layers.Dense(10, activation="softmax")]
v = a.variant
keras.utils.set_random_seed(a.seed)
if v == "best_zoom":
    body = aug(zoom=0.1) + bn(32) + bn(32) + [layers.MaxPooling2D()] + bn(64) + bn(64) + [layers.MaxPooling2D()] + head()
elif v == "deotte":
    body = aug(zoom=0.1) + bn(32) + bn(32) + bn(32, 5, 2, "same") + [layers.Dropout(0.4)] + bn(64) + bn(64) + bn(64, 5, 2, "same") + [layers.Dropout(0.4)] + head()
elif v == "wide":
    body = aug() + bn(48) + bn(48) + [layers.MaxPooling2D()] + bn(96) + bn(96) + [layers.MaxPooling2D()] + head()
elif v == "pad3":
    body = aug() + bn(32, pad="same") + bn(32, pad="same") + [layers.MaxPooling2D()] + bn(64, pad="same") + bn(64, pad="same") + [layers.MaxPooling2D()] + bn(128, pad="same") + [layers.MaxPooling2D()] + head(0.3)
else:
    raise SystemExit(f"variant: unknown {v!r}")
m = keras.Sequential([keras.Input((28, 28)), layers.Reshape((28, 28, 1)), *body])
steps = math.ceil(len(tr) / a.batch)
m.compile(keras.optimizers.Adam(keras.optimizers.schedules.CosineDecay(a.lr, steps * a.epochs)), "sparse_categorical_crossentropy", metrics=["accuracy"], steps_per_execution=steps // 10 if steps % 10 == 0 else 1)
ds = tf.data.Dataset.from_tensor_slices((x[tr], y[tr])).shuffle(len(tr), seed=a.seed).batch(a.batch).prefetch(2)
t = time.perf_counter()
m.fit(ds, epochs=a.epochs, verbose=0)
sec = time.perf_counter() - t
pv = m.predict(x[va], batch_size=1000, verbose=0); pt = m.predict(xt, batch_size=1000, verbose=0)
if a.out:
    np.savez(a.out, val=pv, test=pt)
print(f"{v} epochs={a.epochs} seed={a.seed} params={m.count_params()} val={np.mean(pv.argmax(1)==y[va]):.4f} test={np.mean(pt.argmax(1)==yt):.4f} seconds={sec:.0f}", flush=True)
