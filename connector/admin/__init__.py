"""What IT does to an organization's access: mapping, product states, manual grants, health.

One service per action, used alike by the command line and the console.
"""
