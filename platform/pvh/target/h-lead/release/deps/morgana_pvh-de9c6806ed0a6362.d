/work/main/platform/pvh/target/h-lead/release/deps/morgana_pvh-de9c6806ed0a6362.d: platform/pvh/src/lib.rs platform/pvh/src/acpi.rs platform/pvh/src/apic.rs platform/pvh/src/boot.rs platform/pvh/src/console.rs platform/pvh/src/cpu.rs platform/pvh/src/dma.rs platform/pvh/src/entropy.rs platform/pvh/src/exit.rs platform/pvh/src/fault.rs platform/pvh/src/heap.rs platform/pvh/src/idle.rs platform/pvh/src/interrupts.rs platform/pvh/src/memmap.rs platform/pvh/src/paging.rs platform/pvh/src/pci.rs platform/pvh/src/stacks.rs platform/pvh/src/sync.rs platform/pvh/src/time.rs

/work/main/platform/pvh/target/h-lead/release/deps/libmorgana_pvh-de9c6806ed0a6362.rlib: platform/pvh/src/lib.rs platform/pvh/src/acpi.rs platform/pvh/src/apic.rs platform/pvh/src/boot.rs platform/pvh/src/console.rs platform/pvh/src/cpu.rs platform/pvh/src/dma.rs platform/pvh/src/entropy.rs platform/pvh/src/exit.rs platform/pvh/src/fault.rs platform/pvh/src/heap.rs platform/pvh/src/idle.rs platform/pvh/src/interrupts.rs platform/pvh/src/memmap.rs platform/pvh/src/paging.rs platform/pvh/src/pci.rs platform/pvh/src/stacks.rs platform/pvh/src/sync.rs platform/pvh/src/time.rs

/work/main/platform/pvh/target/h-lead/release/deps/libmorgana_pvh-de9c6806ed0a6362.rmeta: platform/pvh/src/lib.rs platform/pvh/src/acpi.rs platform/pvh/src/apic.rs platform/pvh/src/boot.rs platform/pvh/src/console.rs platform/pvh/src/cpu.rs platform/pvh/src/dma.rs platform/pvh/src/entropy.rs platform/pvh/src/exit.rs platform/pvh/src/fault.rs platform/pvh/src/heap.rs platform/pvh/src/idle.rs platform/pvh/src/interrupts.rs platform/pvh/src/memmap.rs platform/pvh/src/paging.rs platform/pvh/src/pci.rs platform/pvh/src/stacks.rs platform/pvh/src/sync.rs platform/pvh/src/time.rs

platform/pvh/src/lib.rs:
platform/pvh/src/acpi.rs:
platform/pvh/src/apic.rs:
platform/pvh/src/boot.rs:
platform/pvh/src/console.rs:
platform/pvh/src/cpu.rs:
platform/pvh/src/dma.rs:
platform/pvh/src/entropy.rs:
platform/pvh/src/exit.rs:
platform/pvh/src/fault.rs:
platform/pvh/src/heap.rs:
platform/pvh/src/idle.rs:
platform/pvh/src/interrupts.rs:
platform/pvh/src/memmap.rs:
platform/pvh/src/paging.rs:
platform/pvh/src/pci.rs:
platform/pvh/src/stacks.rs:
platform/pvh/src/sync.rs:
platform/pvh/src/time.rs:
