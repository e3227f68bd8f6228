"""`python -m conceptweb` runs the command line."""

from conceptweb.interfaces.cli import main

main()
