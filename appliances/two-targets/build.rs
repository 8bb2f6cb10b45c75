fn main() {
    morgana_codegen::build()
}
