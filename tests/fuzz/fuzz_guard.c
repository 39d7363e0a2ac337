/* fuzz_guard.c - libFuzzer target: the SSRF classifier on arbitrary IPv4/IPv6 addresses
 * and text. Checks that the IPv4-in-IPv6 forms agree with the IPv4 verdict. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "guard.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct sockaddr_in in4;
    struct sockaddr_in6 in6;
    char text[64];
    const char *v4, *mapped;

    if (size >= 4) {
        memset(&in4, 0, sizeof(in4));
        in4.sin_family = AF_INET;
        memcpy(&in4.sin_addr, data, 4);
        v4 = fp_guard_classify((struct sockaddr *)&in4);
        memset(&in6, 0, sizeof(in6));
        in6.sin6_family = AF_INET6;
        in6.sin6_addr.s6_addr[10] = in6.sin6_addr.s6_addr[11] = 0xff;
        memcpy(in6.sin6_addr.s6_addr + 12, data, 4);
        mapped = fp_guard_classify((struct sockaddr *)&in6);
        if ((v4 == NULL) != (mapped == NULL))
            abort();
    }
    if (size >= 16) {
        memset(&in6, 0, sizeof(in6));
        in6.sin6_family = AF_INET6;
        memcpy(&in6.sin6_addr, data, 16);
        (void)fp_guard_classify((struct sockaddr *)&in6);
        if (inet_ntop(AF_INET6, &in6.sin6_addr, text, sizeof(text)) &&
            (fp_guard_classify_text(text) == NULL) !=
                (fp_guard_classify((struct sockaddr *)&in6) == NULL))
            abort();
    }
    if (size < sizeof(text)) {
        memcpy(text, data, size);
        text[size] = '\0';
        (void)fp_guard_classify_text(text);
    }
    return 0;
}
