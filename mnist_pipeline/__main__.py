import sys

from mnist_pipeline.cli.main import main

sys.exit(main())
