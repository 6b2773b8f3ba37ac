from amuro.cli import main

main()
