from mnist_pipeline.cli.main import console_main

console_main()
