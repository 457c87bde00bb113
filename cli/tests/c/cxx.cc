// C++ new/delete reach hugeheap through libstdc++'s operator new (which calls malloc).
#include <cstdio>
#include <cstdlib>
#include <malloc.h>
#include <map>
#include <memory>
#include <string>
#include <vector>

int main() {
    char *p = new char[100];
    if (malloc_usable_size(p) != 112) { std::fprintf(stderr, "operator new[] not on hugeheap: %zu\n", malloc_usable_size(p)); return 1; }
    delete[] p;
    auto *o = new std::string(1000, 'x');
    if (malloc_usable_size(o) != 32) { std::fprintf(stderr, "operator new not on hugeheap: %zu\n", malloc_usable_size(o)); return 1; }
    delete o;
    std::map<int, std::string> m;
    std::vector<std::unique_ptr<std::vector<int>>> vs;
    for (int i = 0; i < 200000; i++) {
        m[i] = std::to_string(i) + " value";
        vs.push_back(std::make_unique<std::vector<int>>(i % 50, i));
    }
    long sum = 0;
    for (auto &v : vs) for (int x : *v) sum += x;
    if (m[12345] != "12345 value" || sum == 0) return 1;
    std::puts("cxx ok");
    return 0;
}
