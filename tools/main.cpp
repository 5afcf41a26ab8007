// moeserve — one binary, subcommands. Placeholder until the CLI lands.
#include <cstdio>
int main() { std::puts("moeserve"); return 0; }
