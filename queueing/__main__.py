from queueing.cli import main

main()
