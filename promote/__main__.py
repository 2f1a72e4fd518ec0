from promote.cli import run

run()
