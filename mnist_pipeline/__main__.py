import sys

from mnist_pipeline.cli import main

sys.exit(main())
