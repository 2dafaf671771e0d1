"""What a user runs, as they run it: the samverkan command as a process, a worker killed
mid-stage, a Prefect server with workers, an installed wheel, and the pages in a real
headless Chromium."""
