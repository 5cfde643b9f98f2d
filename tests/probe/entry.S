/* SPDX-License-Identifier: Apache-2.0 */
/* Probe entry: the VMM enters in 64-bit mode with rsi = &boot_params, like
 * a vmlinux. Set a stack, call probe_main(boot_params), report its status
 * through the exit device. */
        .section .text.entry, "ax"
        .code64
        .globl _start
_start:
        cli
        mov $stack_top, %rsp
        mov %rsi, %rdi
        call probe_main
        mov %eax, %edi
        call probe_exit
1:      hlt
        jmp 1b

        .bss
        .balign 16
stack:
        .skip 16384
stack_top:
        .section .note.GNU-stack, "", @progbits

/* PVH entry (for QEMU's loader, used by bench/vmm.sh): 32-bit protected
 * mode, paging off, ebx = hvm_start_info. Builds 1 GiB of identity-mapped
 * 2 MiB pages, enters long mode and calls probe_main(NULL). */
        .text
        .code32
        .globl pvh_start
pvh_start:
        cli
        mov $pvh_pd, %edi
        mov $0x83, %eax
        mov $512, %ecx
1:      mov %eax, (%edi)
        movl $0, 4(%edi)
        add $0x200000, %eax
        add $8, %edi
        loop 1b
        mov $pvh_pd, %eax
        or $3, %eax
        mov %eax, pvh_pdpt
        mov $pvh_pdpt, %eax
        or $3, %eax
        mov %eax, pvh_pml4
        mov %cr4, %eax
        or $0x20, %eax
        mov %eax, %cr4
        mov $pvh_pml4, %eax
        mov %eax, %cr3
        mov $0xc0000080, %ecx
        rdmsr
        or $0x100, %eax
        wrmsr
        mov %cr0, %eax
        or $0x80000001, %eax
        mov %eax, %cr0
        lgdt pvh_gdt_desc
        ljmp $8, $pvh_long
        .code64
pvh_long:
        mov $0x10, %eax
        mov %eax, %ds
        mov %eax, %es
        mov %eax, %ss
        mov $stack_top, %rsp
        xor %edi, %edi
        call probe_main
        mov %eax, %edi
        call probe_exit

        .data
        .balign 8
pvh_gdt:
        .quad 0
        .quad 0x00af9a000000ffff /* 64-bit code */
        .quad 0x00cf92000000ffff /* data */
pvh_gdt_desc:
        .word 23
        .long pvh_gdt

        .bss
        .balign 4096
pvh_pml4:
        .skip 4096
pvh_pdpt:
        .skip 4096
pvh_pd:
        .skip 4096

        /* XEN_ELFNOTE_PHYS32_ENTRY */
        .section .note.Xen, "a", @note
        .balign 4
        .long 4
        .long 4
        .long 18
        .asciz "Xen"
        .balign 4
        .long pvh_start
        .balign 4
