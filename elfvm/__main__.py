from elfvm.cli import main

main()
