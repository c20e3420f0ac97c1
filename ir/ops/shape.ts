// Ops of this group are registered here (being written).
export {};
