"""Storing and loading through an IO manager outside a run, for test_io_managers and test_object_store."""

from __future__ import annotations

import dagster as dg

def store(io_manager, key: str, value):
    context = dg.build_output_context(asset_key=dg.AssetKey(key))
    io_manager.handle_output(context, value)
    return context


def fetch(io_manager, key: str):
    # Contexts closed at once, also when loading raises, so their instances never outlive the call.
    with dg.build_output_context(asset_key=dg.AssetKey(key)) as upstream:
        with dg.build_input_context(asset_key=dg.AssetKey(key), upstream_output=upstream) as context:
            return io_manager.load_input(context)


def tiny_digit_model():
    import keras

    model = keras.Sequential([keras.Input((28, 28)), keras.layers.Flatten(), keras.layers.Dense(10, activation="softmax")])
    model.compile(optimizer=keras.optimizers.SGD(0.05), loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model
