"""Keras dense networks for delivery days and late risk, with their preprocessing inside.

The saved ``.keras`` file takes raw feature columns (strings and numbers with NaN) and does
everything else itself: string lookup + embedding per category, log scaling, standardisation,
imputation with a missing flag per number, and (for delivery days) the output's scale. A serving
process therefore cannot normalise differently from training: there is nothing to re-implement.

Reproducibility: :func:`seed_everything` fixes Python, NumPy and TensorFlow seeds and turns on
TensorFlow's deterministic ops, so a rebuild on the same data and machine gives the same weights;
metrics agree within :data:`DETERMINISM_TOLERANCE` (different CPUs may round differently).
"""

from __future__ import annotations

import math
import os
from dataclasses import asdict, dataclass

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras
import numpy as np
import pandas as pd
import tensorflow as tf

from ml_assets.features import CATEGORICAL, LOG_SCALED, MISSING_CATEGORY, model_inputs

#: Two trainings on the same data and machine give test metrics within this of each other.
DETERMINISM_TOLERANCE = 1e-6


def seed_everything(seed: int) -> None:
    """Make a training run repeatable (seeds and deterministic TensorFlow kernels)."""
    keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()


@keras.saving.register_keras_serializable(package="scpro")
class NumericPreprocess(keras.layers.Layer):
    """Log-scale, standardise and impute numbers; append a missing flag per column.

    The statistics are fitted on the training rows (NaN-aware) and stored in the layer's config, so
    they travel with the model file.
    """

    def __init__(
        self, mean: list[float], std: list[float], log_scaled: list[bool], **kwargs: object
    ) -> None:
        super().__init__(**kwargs)
        self.mean = [float(v) for v in mean]
        self.std = [float(v) for v in std]
        self.log_scaled = [bool(v) for v in log_scaled]

    def call(self, x):  # noqa: D102 - Keras API
        x = keras.ops.cast(x, "float32")
        missing = keras.ops.isnan(x)
        logged = keras.ops.sign(x) * keras.ops.log1p(keras.ops.abs(x))
        x = keras.ops.where(keras.ops.convert_to_tensor(self.log_scaled), logged, x)
        z = (x - keras.ops.convert_to_tensor(self.mean)) / keras.ops.convert_to_tensor(self.std)
        z = keras.ops.clip(keras.ops.where(missing, keras.ops.zeros_like(z), z), -6.0, 6.0)
        return keras.ops.concatenate([z, keras.ops.cast(missing, "float32")], axis=-1)

    def compute_output_shape(self, input_shape):  # noqa: D102 - Keras API
        return (input_shape[0], 2 * len(self.mean))

    def get_config(self) -> dict[str, object]:  # noqa: D102 - Keras API
        return {
            **super().get_config(),
            "mean": self.mean,
            "std": self.std,
            "log_scaled": self.log_scaled,
        }


@dataclass(frozen=True)
class NetworkConfig:
    """Hyper-parameters of the dense networks (recorded in the registry)."""

    hidden: tuple[int, ...] = (128, 64)
    dropout: float = 0.15
    l2: float = 1e-5
    learning_rate: float = 2e-3
    batch_size: int = 128
    max_epochs: int = 200
    patience: int = 15
    max_embedding_dim: int = 8
    min_category_count: int = 3
    seed: int = 42

    def as_dict(self) -> dict[str, object]:
        """JSON-ready hyper-parameters."""
        return asdict(self)


def _numeric_stats(frame: pd.DataFrame, numeric: list[str]) -> tuple[list, list, list]:
    logged = [c in LOG_SCALED for c in numeric]
    arrays = model_inputs(frame, numeric)
    mean, std = [], []
    for name, is_log in zip(numeric, logged, strict=True):
        x = arrays[name].astype(np.float64)
        if is_log:
            x = np.sign(x) * np.log1p(np.abs(x))
        x = x[~np.isnan(x)]
        mean.append(float(x.mean()) if len(x) else 0.0)
        s = float(x.std()) if len(x) else 1.0
        std.append(s if s > 1e-9 else 1.0)
    return mean, std, logged


def _vocabulary(values: np.ndarray, min_count: int) -> list[str]:
    counts = pd.Series(values).value_counts()
    kept = sorted(str(v) for v, n in counts.items() if n >= min_count and v != MISSING_CATEGORY)
    return kept or [MISSING_CATEGORY]


def build_network(
    train: pd.DataFrame,
    features: list[str],
    task: str,
    config: NetworkConfig,
    target_mean: float = 0.0,
    target_std: float = 1.0,
    base_rate: float = 0.5,
) -> keras.Model:
    """A dense network over embeddings and scaled numbers, preprocessing fitted on ``train``.

    ``task`` is ``"regression"`` (output = delivery days, rescaled inside the model) or
    ``"classification"`` (sigmoid output, bias started at the training base rate so early epochs
    are not spent learning it).
    """
    categorical = [f for f in features if f in CATEGORICAL]
    numeric = [f for f in features if f not in CATEGORICAL]
    arrays = model_inputs(train, features)
    inputs: dict[str, keras.KerasTensor] = {}
    parts = []
    for name in categorical:
        inputs[name] = keras.Input(shape=(1,), dtype="string", name=name)
        vocab = _vocabulary(arrays[name], config.min_category_count)
        lookup = keras.layers.StringLookup(vocabulary=vocab, num_oov_indices=1, name=f"{name}_ids")
        dim = min(config.max_embedding_dim, max(2, math.ceil(math.sqrt(len(vocab) + 1))))
        embedded = keras.layers.Embedding(len(vocab) + 1, dim, name=f"{name}_embedding")(
            lookup(inputs[name])
        )
        parts.append(keras.layers.Flatten(name=f"{name}_flat")(embedded))
    if numeric:
        for name in numeric:
            inputs[name] = keras.Input(shape=(1,), dtype="float32", name=name)
        stacked = keras.layers.Concatenate(name="numbers")([inputs[n] for n in numeric])
        mean, std, logged = _numeric_stats(train, numeric)
        parts.append(NumericPreprocess(mean, std, logged, name="scale_and_impute")(stacked))
    x = keras.layers.Concatenate(name="features")(parts) if len(parts) > 1 else parts[0]
    regularizer = keras.regularizers.L2(config.l2)
    for i, width in enumerate(config.hidden):
        x = keras.layers.Dense(
            width, activation="relu", kernel_regularizer=regularizer, name=f"dense_{i}"
        )(x)
        x = keras.layers.Dropout(config.dropout, name=f"dropout_{i}")(x)
    if task == "regression":
        z = keras.layers.Dense(1, name="standardised_days")(x)
        out = keras.layers.Rescaling(target_std, offset=target_mean, name="delivery_days")(z)
        loss: str | keras.losses.Loss = keras.losses.Huber(delta=1.0)
    else:
        p = min(max(base_rate, 1e-3), 1 - 1e-3)
        bias = keras.initializers.Constant(math.log(p / (1 - p)))
        out = keras.layers.Dense(1, activation="sigmoid", bias_initializer=bias, name="late_risk")(
            x
        )
        loss = "binary_crossentropy"
    model = keras.Model(inputs=inputs, outputs=out, name=f"scpro_{task}")
    model.compile(optimizer=keras.optimizers.Adam(config.learning_rate), loss=loss)
    return model


def _as_model_feed(frame: pd.DataFrame, features: list[str]) -> dict[str, np.ndarray]:
    arrays = model_inputs(frame, features)
    # Strings go in as TensorFlow string tensors (Keras rejects NumPy object arrays).
    return {
        k: tf.constant(v.astype(str).reshape(-1, 1)) if v.dtype == object else v.reshape(-1, 1)
        for k, v in arrays.items()
    }


def fit_network(
    train: pd.DataFrame,
    valid: pd.DataFrame,
    features: list[str],
    target: str,
    task: str,
    config: NetworkConfig,
) -> tuple[keras.Model, dict[str, object]]:
    """Train with early stopping on the (time-ordered, later) validation rows; return the model.

    The regression target is the delivery days, scaled inside the model by the training mean and
    standard deviation, with a Huber loss: robust to the long tail of very late parcels, close to
    the MAE the model is judged by.
    """
    seed_everything(config.seed)
    y_train = train[target].astype("float32").to_numpy()
    y_valid = valid[target].astype("float32").to_numpy()
    model = build_network(
        train,
        features,
        task,
        config,
        target_mean=float(y_train.mean()),
        target_std=float(y_train.std() or 1.0),
        base_rate=float(y_train.mean()),
    )
    stop = keras.callbacks.EarlyStopping(
        monitor="val_loss", patience=config.patience, restore_best_weights=True
    )
    history = model.fit(
        _as_model_feed(train, features),
        y_train,
        validation_data=(_as_model_feed(valid, features), y_valid),
        epochs=config.max_epochs,
        batch_size=config.batch_size,
        shuffle=True,
        callbacks=[stop],
        verbose=0,
    )
    losses = history.history["val_loss"]
    info = {
        "epochs_run": len(losses),
        "best_epoch": int(np.argmin(losses)) + 1,
        "best_val_loss": float(np.min(losses)),
    }
    return model, info


#: Rows predicted in one batch. Up to this many, one ``predict_on_batch`` call: ``predict`` builds
#: a ``tf.data`` pipeline and traces its function again on every call, a fixed ~0.3 s that made
#: most of an incremental scoring cycle's time (eight calls for a late risk and its reasons),
#: for the same predictions.
PREDICT_BATCH = 4096


def predict_network(model: keras.Model, frame: pd.DataFrame, features: list[str]) -> np.ndarray:
    """Predictions for ``frame`` as a flat float64 array (batched, no Python loop per row)."""
    if len(frame) == 0:
        return np.zeros(0)
    feed = _as_model_feed(frame, features)
    if len(frame) <= PREDICT_BATCH:
        out = model.predict_on_batch(feed)
    else:
        out = model.predict(feed, batch_size=PREDICT_BATCH, verbose=0)
    return np.asarray(out, dtype=np.float64).reshape(-1)


def load_network(path: str) -> keras.Model:
    """Load a saved network (its custom layer is registered by importing this module)."""
    return keras.saving.load_model(path, compile=False)
