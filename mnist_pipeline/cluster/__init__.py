"""The cluster deployment's process entry points (the Celery workers' app); imports anything, like cli/."""
