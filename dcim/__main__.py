from dcim.cli import main

main()
