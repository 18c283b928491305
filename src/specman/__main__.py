from specman.cli import main

main()
