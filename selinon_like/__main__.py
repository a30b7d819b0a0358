from selinon_like.cli import main

main(prog_name="selinon-like")
