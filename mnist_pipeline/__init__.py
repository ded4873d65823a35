"""A Dagster pipeline that trains, evaluates and reports on a Keras convnet for MNIST."""

import warnings

# Content data versions on Output are a beta parameter in Dagster 1.13; the pipeline relies on it by design.
warnings.filterwarnings("ignore", message=r"Parameter `data_version` of initializer `Output.__init__` is currently in beta")
